"""REST API: contract endpoints, every bad-input case as a 4xx with a detail, concurrency, lazy imports."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emolib import detect

REPO = Path(__file__).resolve().parents[1]
LIMIT = 1_000_000  # upload limit used by the test app (the default is 10 MB)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height pixels (a decompression bomb's header)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module", params=["keras", "onnx"])
def app(request, tiny_onnx_dir, yunet_path):
    """The API on the tiny model, on each runtime."""
    from emolib import detect, runtimes
    from emolib.serve import create_app

    return create_app(runtimes.load(tiny_onnx_dir, request.param),
                      detect.get_detector("yunet", model_path=yunet_path), max_upload_bytes=LIMIT)


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def jpeg(photos_dir):
    return (photos_dir / "grace_hopper.jpg").read_bytes()


def post(client, data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"):
    return client.post("/predict", files={"file": (name, data, content_type)})


def assert_error(response, status: int, words: str | None = None) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail
    if words is not None:
        assert words in str(detail)


def test_test_endpoint(client):
    response = client.get("/test")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_health_tells_model_and_detector(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["model"]["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert body["model"]["input_size"] == [48, 48]
    assert body["detector"]["name"] == "yunet"
    assert body["max_upload_bytes"] == LIMIT
    assert body["runtime"] in ("keras", "onnx")
    assert bool(body["keras_backend"]) == (body["runtime"] == "keras")  # the onnx runtime has none


def test_openapi_documents_the_endpoints(client):
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/test", "/health"} <= set(spec["paths"])
    post_spec = spec["paths"]["/predict"]["post"]
    assert {"400", "413", "415", "422"} <= set(post_spec["responses"])
    assert "PredictionResult" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_predict_a_photo(client, jpeg):
    response = post(client, jpeg)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["faces_detected"] == 1 and body["detector"] == "yunet"
    face = body["predictions"][0]
    assert set(face) == {"emotion", "label", "emoji", "confidence", "uncertain", "box", "probabilities"}
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert 0 <= face["confidence"] <= 100
    assert face["box"]["w"] > 50


def test_predict_png_without_faces(client):
    response = post(client, _png(np.full((200, 300, 3), 30, np.uint8)), "blank.png", "image/png")
    assert response.status_code == 200
    assert response.json() == {"faces_detected": 0, "detector": "yunet", "predictions": []}


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def test_empty_file(client):
    assert_error(post(client, b""), 400, "empty")


def test_not_an_image(client):
    assert_error(post(client, b"just some text, no pixels", "notes.txt", "text/plain"), 415,
                 "not a readable image")
    assert_error(post(client, b"%PDF-1.4\n1 0 obj", "doc.pdf", "application/pdf"), 415, "PDF")


def test_truncated_image(client, jpeg):
    assert_error(post(client, jpeg[: len(jpeg) // 3]), 400, "truncated")
    assert_error(post(client, jpeg[:20]), 400)


def test_file_too_large(client):
    just_over = b"\xff\xd8" + b"\x00" * LIMIT  # over the file limit, under the request limit
    assert_error(post(client, just_over), 413, "file too large")
    far_over = b"\x00" * (LIMIT + 200_000)  # refused from Content-Length before it is read
    assert_error(post(client, far_over), 413, "too large")


def test_chunked_upload_too_large_is_cut_off(client):
    def body():
        for _ in range(80):  # 1.6 MB, no Content-Length
            yield b"x" * 20_000

    response = client.post("/predict", content=body(),
                           headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert_error(response, 413, "too large")


def test_too_many_pixels(client):
    assert_error(post(client, png_claiming(10_000, 5_000), "big.png", "image/png"), 413, "50.0 MP")
    assert_error(post(client, png_claiming(20_000, 20_000), "bomb.png", "image/png"), 413, "40.0 MP")


def test_missing_file_field(client, jpeg):
    assert_error(client.post("/predict"), 422)
    assert_error(client.post("/predict", files={"image": ("a.jpg", jpeg, "image/jpeg")}), 422)
    assert_error(client.post("/predict", data={"file": "not a file"}), 422)
    assert_error(client.post("/predict", json={"file": "abc"}), 422)


def test_broken_multipart_and_bad_length(client):
    response = client.post("/predict", content=b"garbage",
                           headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert 400 <= response.status_code < 500 and "detail" in response.json()
    response = client.post("/predict", content=b"abc", headers={"content-length": "lots"})
    assert_error(response, 400, "Content-Length")


def test_wrong_method_and_path(client):
    assert client.get("/predict").status_code == 405
    assert client.get("/nothing").status_code == 404


def test_concurrent_requests(client, jpeg, photos_dir):
    png = (photos_dir / "astronaut_eileen_collins.png").read_bytes()
    payloads = [jpeg, png, b"", jpeg[:5000]] * 6
    expected = {0: 200, 1: 200, 2: 400, 3: 400}
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda data: post(client, data), payloads))
    assert [r.status_code for r in responses] == [expected[i % 4] for i in range(len(payloads))]
    boxes = {tuple(r.json()["predictions"][0]["box"].values()) for r in responses[0::4]}
    assert len(boxes) == 1  # the same photo gives the same answer under load


def test_model_loads_once_at_startup(app, client, jpeg):
    predictor = app.state.predictor
    assert predictor._detector is not None  # detector created at start-up
    model = predictor.model
    for _ in range(3):
        post(client, jpeg)
    assert app.state.predictor is predictor and predictor.model is model


def test_the_api_on_the_onnx_runtime_never_imports_a_framework(photos_dir):
    code = ("import sys; from fastapi.testclient import TestClient; from emolib.serve import create_app; "
            "client = TestClient(create_app('emolib-ferplus', runtime='onnx')); "
            f"photo = open({str(photos_dir / 'grace_hopper.jpg')!r}, 'rb').read(); "
            "r = client.post('/predict', files={'file': ('p.jpg', photo, 'image/jpeg')}); "
            "h = client.get('/health').json(); "
            "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]; "
            "print(r.json()['faces_detected'], h['runtime'], heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["1", "onnx", "[]"]


def test_importing_the_api_or_the_cli_does_not_import_tensorflow():
    code = ("import sys, emolib.serve, emolib.commands, emolib.detect, emolib.imageio; "
            "emolib.commands.build_parser(); "
            "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    help_out = subprocess.run([sys.executable, "-m", "emolib", "serve", "--help"], capture_output=True,
                              text=True, cwd=REPO, timeout=120)
    assert help_out.returncode == 0 and "--port" in help_out.stdout


def test_an_eight_class_model_answers_with_its_own_classes(tmp_path, jpeg, yunet_path):
    from fastapi.testclient import TestClient

    from emolib import detect, labels, models
    from emolib.serve import create_app

    model = models.build_model("simple_cnn", num_classes=8, input_size=48, channels=1, seed=0)
    card = models.make_card(model, backbone="simple_cnn", labels=labels.EMOTIONS_8, name="tiny-eight")
    directory = models.save_model(model, tmp_path / "tiny-eight", card)
    app = create_app(models.load_model(directory), detect.get_detector("yunet", model_path=yunet_path))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/health").json()["model"]["labels"] == list(labels.EMOTIONS_8)
        result = post(client, jpeg).json()
    assert result["faces_detected"] == 1
    face = result["predictions"][0]
    assert set(face["probabilities"]) == set(labels.EMOTIONS_8)
    assert face["label"] == labels.display_name(face["emotion"])
    assert labels.display_name("contempt") == "Mépris" and labels.emoji("contempt") == "😒"


def test_a_registered_detector_plug_in_is_accepted_and_an_unknown_one_is_a_400(client, jpeg):
    from emolib import detect

    @detect.register_detector("everything")
    class Everything(detect.Detector):
        name = "everything"

        def _detect(self, image):
            return [detect.Face((0, 0, image.shape[1], image.shape[0]))]

    try:
        response = client.post("/predict?detector=everything", files={"file": ("a.jpg", jpeg, "image/jpeg")})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["detector"] == "everything" and body["predictions"][0]["box"] == {"x": 0, "y": 0,
                                                                                     "w": 512, "h": 600}
    finally:
        del detect.DETECTORS["everything"]
    response = client.post("/predict?detector=nope", files={"file": ("a.jpg", jpeg, "image/jpeg")})
    assert response.status_code == 400 and "unknown detector 'nope'" in response.json()["detail"]


def test_a_model_name_the_file_system_refuses_is_a_400_not_a_500(client, jpeg):
    """Found by bench/fuzz_api.py: an 8,000-character ``model`` made ``Path.is_dir`` raise ENAMETOOLONG
    (a 500)."""
    for name in ("a" * 8000, "emolib-ferplus\x00", "../" * 2000 + "etc"):
        response = client.post("/predict", params={"model": name},
                               files={"file": ("a.jpg", jpeg, "image/jpeg")})
        assert_error(response, 400, "unknown model")
        assert len(response.json()["detail"]) < 1000  # the name is cut short in the message


def test_the_health_of_a_shipped_model_matches_its_schema(yunet_path):
    """Its card has an uncertain_below dict and a calibration (the tiny model's has neither)."""
    from fastapi.testclient import TestClient

    from emolib import detect
    from emolib.serve import create_app

    app = create_app("emolib-fer2013", detect.get_detector("yunet", model_path=yunet_path), runtime="onnx")
    with TestClient(app, raise_server_exceptions=False) as shipped:
        response = shipped.get("/health")
    assert response.status_code == 200, response.text
    model = response.json()["model"]
    assert model["uncertain_below"]["confidence"] > 0 and model["temperature"] > 0


def test_health_and_the_web_page_are_in_the_schema(client):
    spec = client.get("/openapi.json").json()
    assert "text/html" in spec["paths"]["/"]["get"]["responses"]["200"]["content"]
    health = spec["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert health == {"$ref": "#/components/schemas/Health"}
    assert {"model", "detector", "max_pixels"} <= set(spec["components"]["schemas"]["Health"]["properties"])
    # the detector's own settings
    assert client.get("/health").json()["detector"]["score_threshold"] == detect.YUNET_SCORE_THRESHOLD

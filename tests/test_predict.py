"""EmotionPredictor and ``emolib predict``: result dict contract, batching, flip TTA, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from emolib import commands, detect, labels
from emolib.imageio import load_image
from emolib.results import OPTIONAL_FACE_FIELDS, FacePrediction, PredictionResult

pytestmark = pytest.mark.backend  # run on every backend (see the Makefile)

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut_eileen_collins.png", "grace_hopper.jpg")


def _prediction_runtimes() -> tuple[str, ...]:
    """The runtimes the prediction tests run on here. Exporting to ONNX goes through tf2onnx, which needs
    TensorFlow; the ONNX runtime itself does not depend on the Keras backend, so its tests run in the
    TensorFlow environment and the other backends' environments test their own Keras runtime."""
    import keras

    return ("keras", "onnx") if keras.backend.backend() == "tensorflow" else ("keras",)


#: ``keras`` everywhere, ``onnx`` too where the model can be exported (the TensorFlow environment)
PREDICTION_RUNTIMES = _prediction_runtimes()


@pytest.fixture(scope="module")
def prediction_model_dir(request) -> Path:
    """The tiny model for the runtimes of :data:`PREDICTION_RUNTIMES` (with its ``model.onnx`` where
    ONNX is among them)."""
    return request.getfixturevalue("tiny_onnx_dir" if "onnx" in PREDICTION_RUNTIMES else "tiny_model_dir")


def check_result(result: dict, image_shape=None, detector=None) -> None:
    """Assert that ``result`` is the result dict declared by emolib.results, consistent in itself."""
    PredictionResult.model_validate(result, strict=True)
    assert set(result) == {"faces_detected", "detector", "predictions"} == set(PredictionResult.model_fields)
    assert isinstance(result["faces_detected"], int)
    assert result["faces_detected"] == len(result["predictions"])
    if detector is not None:
        assert result["detector"] == detector
    for face in result["predictions"]:
        assert set(face) == {"emotion", "label", "emoji", "confidence", "uncertain", "box", "probabilities"} \
            == set(FacePrediction.model_fields) - set(OPTIONAL_FACE_FIELDS)
        probs = face["probabilities"]
        assert list(probs) == list(labels.EMOTIONS_7)
        assert all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in probs.values())
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert face["emotion"] == max(probs, key=probs.get)
        assert face["label"] == labels.display_name(face["emotion"], "fr")
        assert face["emoji"] == labels.emoji(face["emotion"])
        assert isinstance(face["confidence"], float)
        assert face["confidence"] == pytest.approx(100 * probs[face["emotion"]], abs=0.01)
        assert isinstance(face["uncertain"], bool)
        box = face["box"]
        assert set(box) == {"x", "y", "w", "h"} and all(isinstance(v, int) for v in box.values())
        assert box["w"] > 0 and box["h"] > 0 and box["x"] >= 0 and box["y"] >= 0
        if image_shape is not None:
            assert box["x"] + box["w"] <= image_shape[1] and box["y"] + box["h"] <= image_shape[0]
    json.dumps(result)  # plain JSON types only


class CountingModel:
    """Wraps a Keras model and records the batch size of every predict_on_batch call."""

    def __init__(self, model):
        self.model = model
        self.calls: list[int] = []

    def predict_on_batch(self, batch):
        self.calls.append(len(batch))
        return self.model.predict_on_batch(batch)


@pytest.fixture(scope="module", params=PREDICTION_RUNTIMES)
def loaded(request, prediction_model_dir):
    """The tiny model on each runtime: every predictor test runs on Keras and (with TensorFlow, which
    exports it) on ONNX Runtime."""
    from emolib import runtimes

    return runtimes.load(prediction_model_dir, request.param)


@pytest.fixture(scope="module")
def yunet(yunet_path):
    return detect.get_detector("yunet", model_path=yunet_path)


@pytest.fixture(scope="module")
def predictor(loaded, yunet):
    from emolib.predict import EmotionPredictor

    return EmotionPredictor(loaded, detector=yunet)


@pytest.fixture(scope="module")
def haar_predictor(loaded):
    from emolib.predict import EmotionPredictor

    return EmotionPredictor(loaded, detector="haar", warmup=False)


@pytest.fixture(scope="module")
def photos(photos_dir):
    return {name: load_image(photos_dir / name) for name in PHOTOS}


@pytest.fixture(scope="module")
def group(photos, yunet):
    """A canvas with three faces: both portraits and a smaller copy of one."""
    canvas = np.full((620, 1180, 3), 90, np.uint8)
    canvas[10:610, 0:512] = photos["grace_hopper.jpg"]
    canvas[0:512, 560:1072] = photos["astronaut_eileen_collins.png"]
    small = cv2.resize(photos["grace_hopper.jpg"][80:380, 120:420], (150, 150), interpolation=cv2.INTER_AREA)
    canvas[450:600, 1020:1170] = small
    return canvas


@pytest.mark.parametrize("name", PHOTOS)
def test_each_portrait_gives_one_face_with_yunet_and_haar(predictor, haar_predictor, photos_dir, photos,
                                                          name):
    for runner, detector in ((predictor, "yunet"), (haar_predictor, "haar")):
        result = runner.predict(photos_dir / name)
        check_result(result, photos[name].shape, detector)
        assert result["faces_detected"] == 1


def test_composite_gives_as_many_faces_as_it_has(predictor, haar_predictor, group):
    for runner in (predictor, haar_predictor):
        result = runner.predict(group)
        check_result(result, group.shape)
        assert result["faces_detected"] == 3, runner.detector.name


def test_blank_image_gives_zero_faces_and_no_model_call(predictor):
    counting = CountingModel(predictor.model)
    predictor.model = counting
    try:
        result = predictor.predict(np.full((240, 320, 3), 200, np.uint8))
    finally:
        predictor.model = counting.model
    assert result == {"faces_detected": 0, "detector": "yunet", "predictions": []}
    assert counting.calls == []


def test_the_fallback_classifies_a_small_faceless_image_whole_and_says_so(loaded, yunet):
    from emolib.predict import FALLBACK_MAX_SIDE, EmotionPredictor

    whole = EmotionPredictor(loaded, detector=yunet, fallback="whole", warmup=False)
    crop = np.full((120, 100, 3), 200, np.uint8)  # no face a detector finds: a blank thumbnail
    result = whole.predict(crop)
    check_result(result, crop.shape, detector="none")
    assert result["faces_detected"] == 1
    assert result["predictions"][0]["box"] == {"x": 0, "y": 0, "w": 100, "h": 120}
    assert result["predictions"][0]["probabilities"] == whole.predict(crop, whole_image=True)[
        "predictions"][0]["probabilities"]
    for not_a_crop in ((FALLBACK_MAX_SIDE + 1, 300), (120, 250)):  # too large, or too elongated
        assert whole.predict(np.full((*not_a_crop, 3), 200, np.uint8))["predictions"] == []
    assert EmotionPredictor(loaded, detector=yunet, warmup=False).predict(crop)["predictions"] == []
    with pytest.raises(ValueError, match="fallback must be one of none, whole"):
        EmotionPredictor(loaded, detector=yunet, fallback="guess", warmup=False)


def test_all_faces_of_an_image_go_in_one_model_call(predictor, group):
    counting = CountingModel(predictor.model)
    predictor.model = counting
    try:
        predictor.predict(group)
    finally:
        predictor.model = counting.model
    assert counting.calls == [3]


def test_predict_many_batches_faces_across_images_and_matches_predict(predictor, photos, group):
    images = [photos["grace_hopper.jpg"], np.zeros((100, 100, 3), np.uint8), group]
    one_by_one = [predictor.predict(image) for image in images]
    counting = CountingModel(predictor.model)
    predictor.model = counting
    try:
        together = predictor.predict_many(images)
    finally:
        predictor.model = counting.model
    assert counting.calls == [4]
    assert [r["faces_detected"] for r in together] == [1, 0, 3]
    for a, b in zip(one_by_one, together, strict=True):
        assert [f["box"] for f in a["predictions"]] == [f["box"] for f in b["predictions"]]
        for fa, fb in zip(a["predictions"], b["predictions"], strict=True):
            np.testing.assert_allclose(list(fa["probabilities"].values()), list(fb["probabilities"].values()),
                                       atol=1e-5)


def test_the_stream_keeps_order_and_keys_reports_bad_images_and_calls_the_model_once_per_chunk(
        predictor, photos, group, photos_dir, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a JPEG")
    items = [("portrait", photos["grace_hopper.jpg"]), ("missing", tmp_path / "missing.png"),
             ("group", group), ("blank", np.zeros((100, 100, 3), np.uint8)), ("broken", broken),
             ("file", photos_dir / "grace_hopper.jpg")]
    counting = CountingModel(predictor.model)
    predictor.model = counting
    try:
        chunks = list(predictor.predict_chunks(iter(items), chunk=4))
    finally:
        predictor.model = counting.model
    assert [[o.key for o in chunk] for chunk in chunks] == [["portrait", "missing", "group", "blank"],
                                                            ["broken", "file"]]
    assert counting.calls == [4, 1]  # one call per chunk, for all its faces
    outcomes = {o.key: o for chunk in chunks for o in chunk}
    assert outcomes["missing"].result is None and "no such image file" in outcomes["missing"].error
    assert outcomes["broken"].result is None and "image" in outcomes["broken"].error
    usable = ("portrait", "group", "blank", "file")
    assert [outcomes[key].result["faces_detected"] for key in usable] == [1, 3, 0, 1]
    for key in usable:
        assert outcomes[key].error is None
        check_result(outcomes[key].result)
    assert outcomes["file"].result == predictor.predict(photos_dir / "grace_hopper.jpg")
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        next(predictor.predict_chunks(items, chunk=0))


def test_every_input_form_gives_the_same_result(predictor, photos_dir):
    path = photos_dir / "grace_hopper.jpg"
    expected = predictor.predict(path)
    for source in (str(path), path.read_bytes(), Image.open(path), load_image(path)):
        assert predictor.predict(source) == expected


def test_whole_image_classifies_the_resized_gray_image(predictor, loaded, fer2013_dir):
    face_file = sorted((fer2013_dir / "test" / "happy").iterdir())[0]
    result = predictor.predict(face_file, whole_image=True)
    check_result(result, detector="none")
    assert result["faces_detected"] == 1
    assert result["predictions"][0]["box"] == {"x": 0, "y": 0, "w": 48, "h": 48}
    gray = np.asarray(Image.open(face_file).convert("L"), dtype=np.float32)[None, ..., None]
    expected = np.asarray(loaded.model.predict_on_batch(gray))[0]
    np.testing.assert_allclose(list(result["predictions"][0]["probabilities"].values()), expected, atol=1e-5)


def test_flip_tta_averages_with_the_mirror_in_the_same_call(loaded, yunet, photos):
    from emolib.predict import EmotionPredictor

    tta = EmotionPredictor(loaded, detector=yunet, flip_tta=True, warmup=False)
    image = photos["astronaut_eileen_collins.png"]
    counting = CountingModel(tta.model)
    tta.model = counting
    result = tta.predict(image)
    tta.model = counting.model
    assert counting.calls == [2]
    face = yunet.detect(image)[0]
    crop = detect.crop_faces(image, [face], (48, 48), channels=1, square=True).astype(np.float32)
    plain = np.asarray(loaded.model.predict_on_batch(crop))[0]
    mirrored = np.asarray(loaded.model.predict_on_batch(crop[:, :, ::-1]))[0]
    got = list(result["predictions"][0]["probabilities"].values())
    np.testing.assert_allclose(got, (plain + mirrored) / 2, atol=1e-5)
    assert not np.allclose(plain, mirrored, atol=1e-6)  # the mirror really is a different input


def test_english_labels_and_option_errors(loaded, yunet, photos):
    from emolib.predict import EmotionPredictor

    english = EmotionPredictor(loaded, detector=yunet, language="en", warmup=False)
    face = english.predict(photos["grace_hopper.jpg"])["predictions"][0]
    assert face["label"] == face["emotion"].capitalize()
    with pytest.raises(ValueError, match="language"):
        EmotionPredictor(loaded, language="de")


def test_bad_input_raises_value_error(predictor, tmp_path):
    for bad in (b"", b"not an image", b"\x89PNG\r\n\x1a\n\x00\x00"):
        with pytest.raises(ValueError):
            predictor.predict(bad)
    with pytest.raises(FileNotFoundError):
        predictor.predict(tmp_path / "missing.png")


@pytest.mark.parametrize("runtime", ["auto", "keras", "onnx"])
def test_missing_default_model_is_a_clear_error(monkeypatch, tmp_path, runtime):
    from emolib import modelcards, modelfiles
    from emolib.predict import EmotionPredictor

    monkeypatch.setattr(modelfiles, "DEFAULT_MODEL_DIR", tmp_path / "no-model")
    monkeypatch.setattr(modelcards, "DEFAULT_MODEL_DIR", tmp_path / "no-model")
    with pytest.raises(FileNotFoundError, match="no model file"):
        EmotionPredictor(runtime=runtime)


def test_concurrent_predictions_are_consistent(predictor, photos, group):
    images = [photos["grace_hopper.jpg"], group, photos["astronaut_eileen_collins.png"]] * 4
    expected = [predictor.predict(image) for image in images]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(predictor.predict, images))
    assert [r["faces_detected"] for r in results] == [1, 3, 1] * 4
    for got, want in zip(results, expected, strict=True):
        assert [f["box"] for f in got["predictions"]] == [f["box"] for f in want["predictions"]]
        for a, b in zip(got["predictions"], want["predictions"], strict=True):
            np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()),
                                       atol=1e-5)


def test_info_describes_model_and_detector(predictor):
    info = predictor.info()
    assert info["model"]["labels"] == list(labels.EMOTIONS_7)
    assert info["model"]["input_size"] == [48, 48] and info["model"]["channels"] == 1
    assert info["detector"]["name"] == "yunet"
    assert info["runtime"] == predictor.runtime
    assert info["model"]["path"].endswith("model.onnx" if predictor.runtime == "onnx" else "model.keras")


# -- CLI -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("runtime", PREDICTION_RUNTIMES)
def test_cli_whole_image_json_contract(prediction_model_dir, fer2013_dir, predictor, runtime):
    """``python -m emolib predict FACE --model M --whole-image --json`` prints the class probabilities."""
    face_file = sorted((fer2013_dir / "test" / "happy").iterdir())[0]
    command = [sys.executable, "-m", "emolib", "predict", str(face_file),
               "--model", str(prediction_model_dir), "--whole-image", "--json", "--runtime", runtime]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=240)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["image"] == str(face_file)
    result = {k: v for k, v in record.items() if k != "image"}
    check_result(result, detector="none")
    assert result["faces_detected"] == 1
    expected = predictor.predict(face_file, whole_image=True)["predictions"][0]["probabilities"]
    np.testing.assert_allclose(list(result["predictions"][0]["probabilities"].values()),
                               list(expected.values()), atol=1e-4)


def test_cli_keeps_going_after_a_bad_image(tiny_model_dir, photos_dir, yunet_path, tmp_path, capsys,
                                           monkeypatch):
    monkeypatch.setenv("EMOLIB_MODEL_DIR", str(yunet_path.parent))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes((photos_dir / "grace_hopper.jpg").read_bytes()[:4000])
    good = photos_dir / "grace_hopper.jpg"
    code = commands.main(["predict", str(bad), str(good), str(tmp_path / "missing.png"), "--model",
                          str(tiny_model_dir), "--detector", "yunet", "--json"])
    captured = capsys.readouterr()
    assert code == 1
    records = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    assert [r["image"] for r in records] == [str(good)]
    check_result({k: v for k, v in records[0].items() if k != "image"}, detector="yunet")
    assert records[0]["faces_detected"] == 1
    assert f"{bad}: corrupt or truncated JPEG" in captured.err
    assert "missing.png: no such image file" in captured.err
    assert "2 of 3 image(s) could not be read" in captured.err


def test_cli_without_a_detector_file_fails_once_and_clearly(tiny_model_dir, photos_dir, tmp_path, capsys,
                                                             monkeypatch):
    import urllib.error

    monkeypatch.setenv("EMOLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EMOLIB_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.delenv("EMOLIB_MODEL_DIR", raising=False)

    def offline(url):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(detect.yunet, "_urlopen", offline)
    photo = str(photos_dir / "grace_hopper.jpg")
    code = commands.main(["predict", photo, photo, "--model", str(tiny_model_dir), "--detector", "yunet",
                          "--json"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("could not download") == 1 and "network is unreachable" in err
    # without --detector, the default falls back to Haar when YuNet is not available locally
    assert commands.main(["predict", photo, "--model", str(tiny_model_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["detector"] == "haar"


def test_cli_plain_text_output(tiny_model_dir, photos_dir, capsys):
    code = commands.main(["predict", str(photos_dir / "grace_hopper.jpg"), "--model", str(tiny_model_dir),
                          "--detector", "haar", "--flip-tta"])
    out = capsys.readouterr().out
    assert code == 0
    assert "grace_hopper.jpg: 1 face(s) [haar]" in out
    assert " % at x=" in out

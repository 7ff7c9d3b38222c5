"""The API's explain flag, CORS, and the plain web page (GET /) in Chromium, served and from file://.

The browser tests run ``python -m emolib serve`` for real (uvicorn in a subprocess). A screenshot of the
page goes to $EMOLIB_SCREENSHOTS (default: the temp folder; ``EMOLIB_SCREENSHOTS=results/screenshots``
refreshes the committed one).
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import CHROMIUM_ARGS, REPO, SCREENSHOTS, free_port, serve_api
from PIL import Image

from emolib.explain import OVERLAY_SIDE

PAGE = REPO / "emolib" / "static" / "index.html"
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def client(tiny_model_dir, yunet_path):
    from fastapi.testclient import TestClient

    from emolib import detect, models
    from emolib.serve import create_app

    app = create_app(models.load_model(tiny_model_dir), detect.get_detector("yunet", model_path=yunet_path))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def jpeg(photos_dir):
    return (photos_dir / "grace_hopper.jpg").read_bytes()


def post(client, data: bytes, query: str = "", headers: dict | None = None):
    return client.post(f"/predict{query}", files={"file": ("photo.jpg", data, "image/jpeg")}, headers=headers)


# -- explain ---------------------------------------------------------------------------------------

def test_predict_without_explain_is_unchanged(client, jpeg):
    body = post(client, jpeg).json()
    assert body["faces_detected"] == 1
    assert set(body["predictions"][0]) == {"emotion", "label", "emoji", "confidence", "uncertain", "box",
                                           "probabilities"}


def test_predict_with_explain_adds_saliency(client, jpeg):
    response = post(client, jpeg, "?explain=true")
    assert response.status_code == 200, response.text
    face = response.json()["predictions"][0]
    picture = Image.open(io.BytesIO(base64.b64decode(face["saliency"]["png"])))
    assert picture.format == "PNG" and [picture.height, picture.width] == face["saliency"]["size"]
    assert set(face) - {"saliency"} == {"emotion", "label", "emoji", "confidence", "uncertain", "box",
                                        "probabilities"}


def test_explain_keeps_bad_input_a_4xx_and_no_face_an_empty_list(client):
    blank = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 200, 200)).save(blank, format="PNG")
    body = post(client, blank.getvalue(), "?explain=true").json()
    assert body["faces_detected"] == 0 and body["predictions"] == []
    for data, status in ((b"", 400), (b"plain text, no image", 415), (blank.getvalue()[:40], 400)):
        response = post(client, data, "?explain=true")
        assert response.status_code == status and response.json()["detail"], response.text
    assert post(client, blank.getvalue(), "?explain=maybe").status_code == 422


def test_openapi_documents_explain(client):
    spec = client.get("/openapi.json").json()
    parameters = spec["paths"]["/predict"]["post"]["parameters"]
    explain = next(p for p in parameters if p["name"] == "explain")
    assert explain["in"] == "query" and explain["schema"]["type"] == "boolean"
    assert "saliency" in explain["description"]
    assert "Saliency" in spec["components"]["schemas"]


# -- CORS ------------------------------------------------------------------------------------------

def _preflight(client, origin: str):
    return client.options("/predict", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})


@pytest.mark.parametrize("origin", ["null", "http://localhost:8000", "http://127.0.0.1:5173"])
def test_cors_allows_file_pages_and_localhost_by_default(client, jpeg, origin):
    preflight = _preflight(client, origin)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    response = post(client, jpeg, headers={"Origin": origin})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == origin


def test_cors_refuses_other_origins(client, jpeg):
    for origin in ("https://evil.example", "http://localhost.evil.example"):
        assert _preflight(client, origin).status_code == 400
        response = post(client, jpeg, headers={"Origin": origin})
        assert "access-control-allow-origin" not in response.headers


def test_cors_origins_option_replaces_the_default(tiny_model_dir, yunet_path, jpeg):
    from fastapi.testclient import TestClient

    from emolib import detect, models
    from emolib.commands import build_parser
    from emolib.serve import create_app

    args = build_parser().parse_args(["serve", "--cors-origin", "https://lab.example",
                                      "--cors-origin", "https://other.example"])
    assert args.cors_origins == ["https://lab.example", "https://other.example"]
    app = create_app(models.load_model(tiny_model_dir), detect.get_detector("yunet", model_path=yunet_path),
                     cors_origins=args.cors_origins)
    with TestClient(app) as custom:
        assert _preflight(custom, "https://other.example").headers["access-control-allow-origin"] \
            == "https://other.example"
        assert _preflight(custom, "null").status_code == 400
        too_large = custom.post("/predict", content=b"x", headers={"Origin": "https://lab.example",
                                                                    "Content-Length": str(10 ** 9)})
        assert too_large.status_code == 413  # errors carry CORS headers: the page can show them
        assert too_large.headers["access-control-allow-origin"] == "https://lab.example"


def test_root_serves_the_web_page(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "/predict" in response.text and "<script" in response.text


# -- the page in Chromium --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api_server(tmp_path_factory, yunet_path):
    """``python -m emolib serve`` on a free port, with the shipped FER2013 model."""
    with serve_api(tmp_path_factory.mktemp("serve") / "serve.log", "emolib-fer2013") as server:
        yield server.url


@pytest.fixture(scope="module")
def web_browser(playwright_driver, chromium_path):
    browser = playwright_driver.chromium.launch(executable_path=chromium_path, headless=True,
                                                args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.set_default_timeout(WAIT_MS)
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    page.goto(url)
    return page


def _analyse(page, photo: Path) -> None:
    page.set_input_files("#file", str(photo))
    page.wait_for_selector(".face")


@pytest.mark.browser
def test_page_served_by_the_api_shows_faces_and_errors(web_browser, api_server, photos_dir, tmp_path):
    page = _open(web_browser, api_server + "/")
    assert page.input_value("#api") == api_server  # same origin: no URL to type
    page.check("#explain")
    photo = photos_dir / "grace_hopper.jpg"
    _analyse(page, photo)
    assert "Faces detected: 1" in page.text_content("#status")
    face = page.text_content(".face")
    assert "%" in face and any(emoji in face for emoji in "😠🤢😨😄😢😲😐")
    assert len(page.query_selector_all(".bar")) == 7
    assert page.evaluate("document.querySelector('img.saliency').naturalWidth") == OVERLAY_SIDE
    # the photo is drawn at its own size, with a box in the face's colour on it
    assert page.evaluate("document.getElementById('canvas').width") == Image.open(photo).width
    drawn = page.evaluate("""() => {
        const c = document.getElementById('canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4)
            n += Math.abs(d[i] - 31) + Math.abs(d[i + 1] - 119) + Math.abs(d[i + 2] - 180) < 6;
        return n; }""")
    original = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    already = int((np.abs(original - (31, 119, 180)).sum(axis=2) < 6).sum())
    assert drawn > already + 1000  # the first face's box and caption in its colour (#1f77b4)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "web-client.png"), full_page=True)
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    page.set_input_files("#file", str(text))
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    assert "415" in page.text_content("#error") and page.query_selector(".face") is None
    assert page.js_errors == []
    page.close()


@pytest.mark.browser
def test_page_opened_from_disk_talks_to_the_api_on_another_port(web_browser, api_server, photos_dir):
    page = _open(web_browser, f"{PAGE.as_uri()}?api={api_server}")
    assert page.evaluate("location.protocol") == "file:"
    _analyse(page, photos_dir / "grace_hopper.jpg")  # cross-origin: needs CORS for origin "null"
    assert "Faces detected: 1" in page.text_content("#status") and page.text_content("#error") == ""
    page.fill("#api", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    page.set_input_files("#file", str(photos_dir / "grace_hopper.jpg"))
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    assert "cannot reach the API" in page.text_content("#error")
    assert page.js_errors == []
    page.close()


def test_remote_predictor_explains_a_face_through_the_api(api_server, photos_dir):
    """The dashboard's 🔍 Why? under `make dashboard` (kernels ask the API): RemotePredictor.explain_face."""
    from emolib.widgets.remote import RemotePredictor

    image = np.asarray(Image.open(photos_dir / "grace_hopper.jpg").convert("RGB"))
    remote = RemotePredictor(api_server)
    face = remote.predict(image)["predictions"][0]
    entry = remote.explain_face(image, face)
    picture = Image.open(io.BytesIO(base64.b64decode(entry["png"])))
    assert [picture.height, picture.width] == entry["size"] == [OVERLAY_SIDE, OVERLAY_SIDE]
    assert remote.explain_face(image, face) is entry  # the photo is explained once, for all its faces
    with pytest.raises(ValueError, match="not found again"):
        remote.explain_face(image, {**face, "box": {"x": 0, "y": 0, "w": 10, "h": 10}})


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the page's card() function")
def test_the_page_shows_valence_and_arousal_when_a_face_has_them(tmp_path):
    """The web page's ``card()`` under Node with a minimal DOM: a face from a model with a valence-arousal
    head gets a line with both values; other faces do not."""
    page = (REPO / "emolib" / "static" / "index.html").read_text(encoding="utf-8")
    script = page.split("<script>", 1)[1].split("</script>", 1)[0]
    functions = "\n".join(re.findall(r"^function (?:element|card)\(.*?^}\n", script, re.S | re.M))
    harness = tmp_path / "card.js"
    harness.write_text(
        "const document = {createElement: tag => ({tag, children: [], "
        "append(...c) { this.children.push(...c); }})};\n"
        + functions + "\n"
        "const text = node => typeof node === 'string' ? node : (node.textContent || '') + "
        "(node.children || []).map(text).join('');\n"
        "const face = {emoji: '😄', label: 'Joie', confidence: 80, emotion: 'happy', "
        "probabilities: {happy: 1}};\n"
        "console.log(JSON.stringify([text(card({...face, valence: 0.5, arousal: -0.25}, 0, '#000')), "
        "text(card(face, 0, '#000'))]));\n", encoding="utf-8")
    with_va, without = json.loads(subprocess.run(["node", str(harness)], capture_output=True, text=True,
                                                 check=True).stdout)
    assert "valence 0.50 · arousal -0.25" in with_va and "valence" not in without

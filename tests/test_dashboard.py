"""The dashboard in a real browser: `emolib dashboard` (what `make dashboard` runs: one shared prediction
API, Voilà serving dashboards/emotions.ipynb with preheated kernels and test-short culling), driven by
Debian's Chromium.

Chromium's fake camera is fed a .y4m video made at test time from a face photo. Screenshots of every
state are written to $EMOLIB_SCREENSHOTS (default: emolib-screenshots in the temp folder, so a test run
leaves the committed ones alone; `EMOLIB_SCREENSHOTS=results/screenshots make test` refreshes those).
Needs /usr/bin/chromium and ffmpeg (``make browser``): the tests skip without them locally and fail in CI.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from helpers import (
    CHROMIUM_ARGS,
    CULL_DISCONNECTED_S,
    CULL_INTERVAL_S,
    LOAD_MS,
    PREDICT_MS,
    Server,
    dashboard_server,
    ffmpeg_executable,
    open_dashboard,
    screenshot,
)

pytestmark = pytest.mark.browser

#: Slack on top of the test-short culling for this loaded 2-core host (kernel shutdown itself takes a few s).
CULL_SLACK_S = 60


@pytest.fixture(scope="module")
def face_photo(photos_dir) -> Path:
    return photos_dir / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def camera_video(tmp_path_factory, face_photo) -> Path:
    """A 3 s .y4m video of a still face photo, 640×480 (even sides), for Chromium's fake camera."""
    ffmpeg = ffmpeg_executable()
    video = tmp_path_factory.mktemp("camera") / "cam.y4m"
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-loop", "1", "-i", str(face_photo), "-t", "3",
                    "-vf", "scale=-2:480,pad=640:480:(ow-iw)/2:0", "-pix_fmt", "yuv420p", str(video)],
                   check=True, timeout=120)
    assert video.stat().st_size > 640 * 480
    return video


@pytest.fixture
def dashboard(chromium, voila_server):
    """A fresh page showing the dashboard's mode chooser (see :func:`helpers.open_dashboard`)."""
    context, page = open_dashboard(chromium, voila_server)
    yield page
    context.close()


def upload(page, path: Path) -> None:
    """Choose ``path`` in the FileUpload button (its file input is not in the DOM: use the chooser)."""
    with page.expect_file_chooser(timeout=LOAD_MS) as chooser:
        page.click("button.emolib-upload")
    chooser.value.set_files(str(path))


def _assert_one_analysed_face(page, source_text: str) -> None:
    count = page.wait_for_selector(".emolib-faces-count", state="visible", timeout=PREDICT_MS)
    faces = int(re.search(r"Faces detected: (\d+)", count.inner_text()).group(1))
    assert faces == 1, page.inner_text(".emolib-results")
    assert source_text in page.inner_text(".emolib-result-details")
    cards = page.locator(".emolib-face-card")
    assert cards.count() == 1
    label = cards.locator(".emolib-face-label").inner_text().strip()
    assert label in {"Surprise", "Peur", "Dégoût", "Joie", "Tristesse", "Colère", "Neutre", "Mépris"}
    confidence = cards.locator(".emolib-face-confidence").inner_text()
    assert re.fullmatch(r"\d{1,3}\.\d %", confidence.strip()), confidence
    assert 0 < float(confidence.split()[0]) <= 100
    assert cards.locator(".emolib-bar-row").count() >= 7  # one bar per emotion
    annotated = page.locator(".emolib-annotated")
    assert annotated.evaluate("img => img.complete && img.naturalWidth > 100 && img.naturalHeight > 100")


def test_upload_photo_shows_one_face_with_emotion(dashboard, face_photo, dashboard_model):
    page = dashboard
    page.click("button.emolib-mode-file")
    page.wait_for_selector(".emolib-file-panel", state="visible")
    page.click(".emolib-settings >> text=Settings")  # the collapsed settings panel opens
    model_select = page.locator(".emolib-settings select").first
    model_select.wait_for(state="visible")
    assert Path(dashboard_model).name in model_select.input_value()  # the option shows the model's path
    screenshot(page, "01-file-mode-settings.png")
    page.click(".emolib-settings >> text=Settings")
    upload(page, face_photo)
    _assert_one_analysed_face(page, "grace_hopper.jpg")
    assert page.locator("button.emolib-continue").is_visible()
    assert page.locator("button.emolib-change-mode").is_visible()
    screenshot(page, "02-upload-result.png")
    # Continue goes back to the same mode, ready for another file
    page.click("button.emolib-continue")
    page.wait_for_selector(".emolib-file-panel", state="visible")
    assert not page.locator(".emolib-face-card").count()
    assert not page.js_errors, page.js_errors


def test_camera_capture_gives_a_result(dashboard):
    page = dashboard
    page.click("button.emolib-mode-camera")
    page.wait_for_selector(".emolib-webcam-capture:enabled", timeout=LOAD_MS)
    page.wait_for_function("() => document.querySelector('.emolib-webcam-video').videoWidth > 0")
    assert page.evaluate("() => document.querySelector('.emolib-webcam-video').srcObject.active")
    screenshot(page, "03-camera-live.png")
    page.click(".emolib-webcam-capture")
    _assert_one_analysed_face(page, "camera")
    # the camera is given back while the result shows
    page.wait_for_function("() => document.querySelector('.emolib-webcam-video').srcObject === null")
    screenshot(page, "04-camera-result.png")
    page.click("button.emolib-continue")  # Continue: the camera again
    page.wait_for_selector(".emolib-webcam-capture:enabled", timeout=LOAD_MS)
    page.click(".emolib-camera-panel button.emolib-back")  # Change mode, from the camera panel
    page.wait_for_selector(".emolib-chooser", state="visible")
    page.wait_for_function("() => document.querySelector('.emolib-webcam-video').srcObject === null")
    assert not page.js_errors, page.js_errors


def test_non_image_upload_shows_a_readable_error(dashboard, tmp_path):
    page = dashboard
    notes = tmp_path / "notes.txt"
    notes.write_text("These are meeting notes, not a photo.\n" * 20)
    page.click("button.emolib-mode-file")
    upload(page, notes)
    error = page.wait_for_selector(".emolib-error", state="visible", timeout=PREDICT_MS)
    text = error.inner_text()
    assert "notes.txt" in text and "image" in text, text
    assert "Traceback" not in page.inner_text("body")
    assert page.locator(".emolib-file-panel").is_visible()  # still in file mode, can retry
    assert not page.locator(".emolib-face-card").count()
    screenshot(page, "05-upload-error.png")


def test_sample_then_crop_by_hand(dashboard):
    page = dashboard
    page.click("button.emolib-sample")
    _assert_one_analysed_face(page, "grace_hopper.jpg")
    page.click("button.emolib-crop")
    image = page.wait_for_selector(".emolib-bbox img", state="visible", timeout=LOAD_MS)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    # Grace Hopper's face is around the middle of the upper half of the portrait
    x0, y0 = box["x"] + 0.30 * box["width"], box["y"] + 0.18 * box["height"]
    x1, y1 = box["x"] + 0.70 * box["width"], box["y"] + 0.55 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    screenshot(page, "06-crop-drawing.png")
    page.click("button.emolib-crop-go")
    page.wait_for_selector(".emolib-result-details:has-text('manual box')", timeout=PREDICT_MS)
    assert page.locator(".emolib-face-card").count() == 1
    assert "Faces detected: 1" in page.inner_text(".emolib-faces-count")
    screenshot(page, "07-crop-result.png")


def test_without_a_model_the_page_says_so(chromium, tmp_path):
    with dashboard_server(tmp_path / "voila.log", tmp_path / "no-such-model") as server:
        context = chromium.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.goto(server.url, timeout=LOAD_MS)
        notice = page.wait_for_selector(".emolib-no-model", state="visible", timeout=LOAD_MS)
        assert "No model found" in notice.inner_text() and "no-such-model" in notice.inner_text()
        page.click("button.emolib-sample")
        error = page.wait_for_selector(".emolib-error", state="visible", timeout=LOAD_MS)
        assert "model" in error.inner_text()
        assert "Traceback" not in page.inner_text("body")
        screenshot(page, "00-no-model.png")
        context.close()


def test_no_camera_gives_a_clear_message(playwright_driver, chromium_path, voila_server):
    """Without a camera device (and no fake one), the camera mode says so in the page."""
    browser = playwright_driver.chromium.launch(executable_path=chromium_path, headless=True,
                                                args=CHROMIUM_ARGS)  # no fake camera, no fake prompt
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(voila_server.url, timeout=LOAD_MS)
        page.wait_for_selector(".emolib-chooser", state="visible", timeout=LOAD_MS)
        page.click("button.emolib-mode-camera")
        error = page.wait_for_selector(".emolib-error", state="visible", timeout=LOAD_MS)
        assert re.search(r"camera", error.inner_text(), re.IGNORECASE), error.inner_text()
        assert page.locator(".emolib-webcam-capture").is_disabled()
        assert page.locator(".emolib-webcam-retry").is_visible()
        assert "Traceback" not in page.inner_text("body")
        screenshot(page, "08-no-camera.png")
    finally:
        browser.close()


def kernel_id_in(html: str) -> str:
    """The id of the kernel Voilà gave a page, from the page's HTML (its Jupyter config)."""
    return re.search(r'"kernelId"\s*:\s*"([0-9a-f-]{36})"', html).group(1)


def kernel_id_of(page) -> str:
    """The id of the kernel Voilà gave this page."""
    return kernel_id_in(page.content())


def network_address() -> str | None:
    """This machine's first IPv4 address other than loopback (the one a room's laptops would use)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_the_rooms_machines_reach_the_dashboard_at_this_machines_address(chromium, voila_server):
    address = network_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    from_the_room = SimpleNamespace(url=f"http://{address}:{voila_server.port}/",
                                    log_tail=voila_server.log_tail)
    context, page = open_dashboard(chromium, from_the_room)
    try:
        page.click("button.emolib-sample")
        page.wait_for_selector(".emolib-faces-count", state="visible")
        assert page.locator(".emolib-face-card").count() >= 1
        # plain http on a network address is not a secure context: the camera says what it needs
        page.click("button.emolib-change-mode")
        page.click("button.emolib-mode-camera")
        error = page.wait_for_selector(".emolib-error", state="visible")
        assert "https or localhost" in error.inner_text(), error.inner_text()
    finally:
        context.close()


def test_a_legacy_protocol_client_gets_the_widgets_and_the_server_stays_up(voila_server):
    """A kernel websocket client without the v1 subprotocol (older tools, scripts) gets the widgets'
    states as binary frames; Voilà alone spins on such frames, its memory growing without bound
    (emolib.voila_launch)."""
    import json
    import urllib.request
    from datetime import UTC, datetime
    from uuid import uuid4

    from websockets.sync.client import connect

    kernel = kernel_id_in(urllib.request.urlopen(voila_server.url, timeout=LOAD_MS / 1000).read().decode())
    session, control = uuid4().hex, uuid4().hex
    url = voila_server.url.replace("http", "ws", 1) + f"/api/kernels/{kernel}/channels?session_id={session}"
    with connect(url, max_size=None, open_timeout=60) as kernel_socket:
        assert kernel_socket.subprotocol is None  # the legacy protocol
        for msg_type, content, metadata in (
                ("comm_open", {"comm_id": control, "target_name": "jupyter.widget.control", "data": {}},
                 {"version": "1.0.0"}),
                ("comm_msg", {"comm_id": control, "data": {"method": "request_states"}}, {})):
            header = {"msg_id": uuid4().hex, "msg_type": msg_type, "session": session, "username": "test",
                      "date": datetime.now(UTC).isoformat(), "version": "5.3"}
            kernel_socket.send(json.dumps({"header": header, "parent_header": {}, "metadata": metadata,
                                           "content": content, "channel": "shell"}))
        frame = b""
        while b'"update_states"' not in frame:
            frame = kernel_socket.recv(timeout=LOAD_MS / 1000)
            frame = frame if isinstance(frame, bytes) else frame.encode()
    assert b"emolib-sample" in frame, "the states of the dashboard's widgets"
    again = urllib.request.urlopen(voila_server.url, timeout=LOAD_MS / 1000).read().decode()
    assert kernel_id_in(again) != kernel, "the server still serves pages, each with its kernel"


def kernel_process(kernel_id: str) -> psutil.Process | None:
    """The kernel's process (its command line names its connection file ``kernel-<id>.json``)."""
    for process in psutil.process_iter(["cmdline"]):
        if any(f"kernel-{kernel_id}.json" in part for part in process.info["cmdline"] or ()):
            return process
    return None


def kernel_known(server: Server, kernel_id: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{server.url}/api/kernels/{kernel_id}", timeout=10) as response:
            return response.status == 200
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise


def test_closed_page_kernel_is_light_and_goes_away(chromium, voila_server):
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(voila_server.url, timeout=LOAD_MS)
    page.wait_for_selector(".emolib-chooser", state="visible", timeout=LOAD_MS)
    page.click("button.emolib-sample")
    _assert_one_analysed_face(page, "grace_hopper.jpg")
    assert "shared prediction server" in page.inner_text(".emolib-model-state")
    kernel_id = kernel_id_of(page)
    assert kernel_known(voila_server, kernel_id)
    process = kernel_process(kernel_id)
    assert process is not None, voila_server.log_tail()
    libraries = {Path(m.path).name for m in process.memory_maps() if m.path}
    assert not [name for name in libraries if "tensorflow" in name], "the viewer's kernel loaded TensorFlow"
    context.close()  # the page goes without a word (no beforeunload): the culler must find it
    deadline = time.monotonic() + CULL_DISCONNECTED_S + CULL_INTERVAL_S + CULL_SLACK_S
    while kernel_known(voila_server, kernel_id) and time.monotonic() < deadline:
        time.sleep(1)
    assert not kernel_known(voila_server, kernel_id), voila_server.log_tail()
    process.wait(timeout=30)  # and its process has ended
    assert not process.is_running()


def test_pages_at_once_each_get_their_own_result(chromium, voila_server, dashboard_model, photos_dir):
    """Three viewers at once, with different photos and models, through the one shared API."""
    from emolib import modelcards
    from emolib.widgets.app import model_label

    shipped = modelcards.list_models()
    start = len(modelcards.read_card(dashboard_model)["labels"])
    other = next(name for name, info in shipped.items() if len(info["labels"]) != start)
    other_classes = len(shipped[other]["labels"])
    viewers = {"upload": (photos_dir / "astronaut_eileen_collins.png", None, start),
               "other model": (photos_dir / "grace_hopper.jpg", other, other_classes),
               "sample": (None, None, start)}
    contexts, pages = [], {}
    try:
        for name in viewers:
            contexts.append(chromium.new_context(viewport={"width": 1100, "height": 900}))
            pages[name] = contexts[-1].new_page()
            pages[name].goto(voila_server.url, timeout=LOAD_MS)
        for name, (photo, model, _) in viewers.items():
            page = pages[name]
            page.wait_for_selector(".emolib-chooser", state="visible", timeout=LOAD_MS)
            if model:
                page.click(".emolib-settings >> text=Settings")
                page.locator(".emolib-settings select").first.select_option(
                    label=model_label(modelcards.SHIPPED_MODELS_DIR / model))
                page.wait_for_selector(f".emolib-model-card:has-text('{other_classes} classes')",
                                       timeout=LOAD_MS)
                card_text = page.inner_text(".emolib-model-card")
                assert ("Mépris 😒" in card_text) == (other_classes == 8), card_text
            if photo:
                page.click("button.emolib-mode-file")
                upload(page, photo)
            else:
                page.click("button.emolib-sample")
        for name, (photo, _, classes) in viewers.items():
            page = pages[name]
            page.wait_for_selector(".emolib-faces-count", state="visible", timeout=PREDICT_MS)
            details = page.inner_text(".emolib-result-details")
            assert (photo.name in details and "sample" not in details) if photo else "sample" in details, name
            card = page.locator(".emolib-face-card").first
            assert card.locator(".emolib-bar-row").count() == classes, name
            assert ("Mépris" in card.inner_text()) == (classes == 8), name
    finally:
        for context in contexts:
            context.close()

"""The dashboard's 🎥 Live mode in Chromium, whose fake camera plays a two-face clip of the shared photos.

Results must keep coming (the overlay's count of drawn results grows, boxes are on it), at most one frame
is in flight, and leaving the mode ends the camera's tracks. The update rate is measured in
bench/live_rate.py, not here. Voilà, Chromium and the screenshots come from conftest.py and helpers.py.
"""

from __future__ import annotations

import pytest
from helpers import LOAD_MS, PREDICT_MS, open_dashboard, screenshot

from emolib import video as V

pytestmark = pytest.mark.browser

DRAWN = "() => Number(document.querySelector('.emolib-camera-panel .emolib-webcam-overlay').dataset.drawn)"
SENT = "() => Number(document.querySelector('.emolib-camera-panel .emolib-webcam-overlay').dataset.sent)"
VIDEO = "document.querySelector('.emolib-camera-panel .emolib-webcam-video')"


@pytest.fixture(scope="module")
def camera_video(tmp_path_factory, photos_dir):
    """8 s of two faces sliding across a 640×480 frame, as .y4m for Chromium's fake camera."""
    path = tmp_path_factory.mktemp("live") / "two-faces.y4m"
    photos = [photos_dir / "grace_hopper.jpg", photos_dir / "astronaut_eileen_collins.png"]
    return V.make_demo_clip(path, photos, seconds=8, face_height=240)


def test_live_mode_updates_results_and_stops_the_camera(chromium, voila_server):
    context, page = open_dashboard(chromium, voila_server)
    try:
        page.click("button.emolib-mode-live")
        page.wait_for_function(f"() => {VIDEO}.videoWidth > 0 && {VIDEO}.srcObject.active")
        assert "🎥 Live" in page.inner_text(".emolib-camera-panel")
        assert not page.locator(".emolib-webcam-capture").is_visible()  # no capture button in live mode
        page.wait_for_function(f"() => ({DRAWN})() >= 3", timeout=PREDICT_MS)
        first = page.evaluate(DRAWN)
        page.wait_for_function(f"() => ({DRAWN})() >= {first + 5}", timeout=PREDICT_MS)  # results keep coming
        assert 0 <= page.evaluate(SENT) - page.evaluate(DRAWN) <= 1  # at most one frame in flight
        stats = page.inner_text(".emolib-camera-panel .emolib-webcam-live-stats")
        assert "updates/s" in stats and "face(s)" in stats and "⚠️" not in stats, stats
        page.wait_for_function("() => /[1-9] face\\(s\\)/.test(document.querySelector("
                               "'.emolib-camera-panel .emolib-webcam-live-stats').textContent)")
        drawn_pixels = page.evaluate(
            "() => { const c = document.querySelector('.emolib-camera-panel .emolib-webcam-overlay');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
            " for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }")
        assert drawn_pixels > 500  # boxes and labels over the video
        screenshot(page, "09-live.png")
        # leaving the mode gives the camera back: its tracks end and no more results are drawn
        page.evaluate(f"() => {{ window.liveStream = {VIDEO}.srcObject; }}")
        page.click(".emolib-camera-panel button.emolib-back")
        page.wait_for_selector(".emolib-chooser", state="visible")
        page.wait_for_function(f"() => {VIDEO}.srcObject === null")
        assert page.evaluate("() => window.liveStream.getTracks().every(t => t.readyState === 'ended')")
        after = page.evaluate(DRAWN)
        page.wait_for_timeout(1500)
        assert page.evaluate(DRAWN) == after  # an answer still on its way is not drawn
        page.click("button.emolib-mode-camera")  # the same camera widget takes one photo again
        page.wait_for_selector(".emolib-webcam-capture:enabled", timeout=LOAD_MS)
        assert "📷 Camera" in page.inner_text(".emolib-camera-panel")
        assert not page.js_errors, page.js_errors
    finally:
        context.close()

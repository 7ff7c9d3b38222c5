"""A small webcam widget (anywidget): live preview in the browser, captured JPEG frames in Python.

The browser side (``webcam.js``) opens the camera with ``getUserMedia`` while ``active`` is true and the
page is visible, and gives it back (stops every track) when ``active`` turns false, the page is hidden or
the view is removed. The capture button encodes the current frame as JPEG and sends its bytes to the
``frame`` trait, then increments ``capture_id``; Python reacts through :meth:`WebcamWidget.on_capture`.
Without a camera, or without permission, ``status`` becomes ``"error"`` and ``error`` holds a readable
message (also shown inside the widget).

With ``live=True`` the widget keeps predicting while the camera plays: the browser sends the current
frame (``live_width`` pixels wide, JPEG), :meth:`WebcamWidget.on_live_frame`'s callback turns it into a
result dict, and the browser draws its boxes and emotions over the video, then sends the next frame. At
most one frame is in flight, so a slow model drops camera frames rather than queueing them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anywidget
import traitlets


def _bytes_from_json(value, widget) -> bytes:
    # ipywidgets hands binary buffers from JavaScript over as memoryview: a Bytes trait refuses those
    # (and the TraitError would only reach the kernel log), so convert here.
    if value is None:
        return b""
    return bytes(value)


class WebcamWidget(anywidget.AnyWidget):
    """Camera preview and capture button; the last captured frame is ``frame`` (JPEG bytes).

    Parameters
    ----------
    active : bool
        Whether the camera should be on (it is also off while the page is hidden).
    width : int
        Preview width in CSS pixels (the captured frame keeps the camera's own resolution).
    quality : float
        JPEG quality of captured frames, 0..1.
    mirror : bool
        Show the preview mirrored, like a mirror (the captured frame is not mirrored).
    inline_errors : bool
        Show camera problems inside the widget (off when the page shows them elsewhere).
    live : bool
        Predict continuously and draw the results over the video (no capture button).
    live_width : int
        Width in pixels of the frames sent in live mode (smaller is faster; faces keep enough pixels).
    """

    _esm = Path(__file__).with_name("webcam.js")

    active = traitlets.Bool(True).tag(sync=True)
    width = traitlets.Int(480).tag(sync=True)
    quality = traitlets.Float(0.92).tag(sync=True)
    mirror = traitlets.Bool(True).tag(sync=True)
    button_label = traitlets.Unicode("📸 Capture").tag(sync=True)
    inline_errors = traitlets.Bool(True).tag(sync=True)
    frame = traitlets.Bytes(b"").tag(sync=True, from_json=_bytes_from_json)
    capture_id = traitlets.Int(0).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)  # idle | starting | live | stopped | error
    error = traitlets.Unicode("").tag(sync=True)
    live = traitlets.Bool(False).tag(sync=True)
    live_width = traitlets.Int(480).tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._live_callback: Callable[[bytes], dict] | None = None
        self.on_msg(self._on_message)

    def on_capture(self, callback: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """Call ``callback(jpeg_bytes)`` after each capture in the browser (usable as a decorator)."""

        def handler(change):
            if self.frame:
                callback(self.frame)

        self.observe(handler, names="capture_id")
        return callback

    def on_error(self, callback: Callable[[str], None]) -> Callable[[str], None]:
        """Call ``callback(message)`` when the browser reports a camera problem."""

        def handler(change):
            if change["new"]:
                callback(change["new"])

        self.observe(handler, names="error")
        return callback

    def on_live_frame(self, callback: Callable[[bytes], dict]) -> Callable[[bytes], dict]:
        """Use ``callback(jpeg_bytes) → result dict`` for the frames of live mode (one at a time)."""
        self._live_callback = callback
        return callback

    def answer_live_frame(self, frame_id: int, data: bytes) -> dict:
        """Run the live callback on one frame and send its faces (or its error) back to the browser."""
        reply = {"type": "live-result", "id": frame_id, "faces": [], "error": ""}
        try:
            if self._live_callback is None:
                raise RuntimeError("no prediction is connected to the live mode")
            result = self._live_callback(data)
            shown = ("box", "emotion", "label", "emoji", "confidence")
            reply["faces"] = [{**{key: face[key] for key in shown}, "uncertain": bool(face.get("uncertain"))}
                              for face in result.get("predictions", [])]
        except Exception as error:  # noqa: BLE001 - shown in the widget; the loop goes on
            reply["error"] = str(error) or type(error).__name__
        self.send(reply)
        return reply

    def _on_message(self, widget, content, buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "live-frame":
            data = bytes(buffers[0]) if buffers else b""
            self.answer_live_frame(int(content.get("id", 0)), data)

    def capture(self) -> None:
        """Ask the browser to capture a frame now (as if the button were pressed)."""
        self.send({"type": "capture"})

    def start(self) -> None:
        """Turn the camera on (in every view of this widget)."""
        self.active = True

    def stop(self) -> None:
        """Turn the camera off: the browser stops its tracks and the camera light goes out."""
        self.active = False

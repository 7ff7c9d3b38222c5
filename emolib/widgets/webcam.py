"""A small webcam widget (anywidget): live preview in the browser, captured JPEG frames in Python.

The browser side (``webcam.js``) opens the camera with ``getUserMedia`` while ``active`` is true and the
page is visible, and gives it back (stops every track) when ``active`` turns false, the page is hidden or
the view is removed. The capture button encodes the current frame as JPEG and sends its bytes to the
``frame`` trait, then increments ``capture_id``; Python reacts through :meth:`WebcamWidget.on_capture`.
Without a camera, or without permission, ``status`` becomes ``"error"`` and ``error`` holds a readable
message (also shown inside the widget).
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

    def capture(self) -> None:
        """Ask the browser to capture a frame now (as if the button were pressed)."""
        self.send({"type": "capture"})

    def start(self) -> None:
        """Turn the camera on (in every view of this widget)."""
        self.active = True

    def stop(self) -> None:
        """Turn the camera off: the browser stops its tracks and the camera light goes out."""
        self.active = False

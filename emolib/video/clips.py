"""A demo clip: two photos of faces sliding across the frame (:func:`make_demo_clip`), for tests,
benchmarks, the notebook and Chromium's fake camera."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from emolib.video.frames import write_video


def make_demo_clip(path: str | os.PathLike, photos: Sequence[str | os.PathLike], *, seconds: float = 4.0,
                   fps: int = 10, size: tuple[int, int] = (640, 480), face_height: int = 200) -> Path:
    """Write a clip in which each photo, scaled to ``face_height`` pixels, slides across the frame in its
    own horizontal band (the first left → right, the second right → left).

    ``.y4m`` is written directly (raw YUV 4:2:0, what Chromium's fake camera reads); any other suffix
    goes through OpenCV's writer (``.mp4``: mp4v, ``.avi``: MJPG).
    """
    from emolib.imageio import load_image

    width, height = size
    faces = []
    for photo in photos:
        rgb = load_image(photo)
        scale = face_height / rgb.shape[0]
        faces.append(cv2.resize(rgb, (round(rgb.shape[1] * scale), face_height),
                                interpolation=cv2.INTER_AREA))
    band = height // max(1, len(faces))
    count = max(1, round(seconds * fps))
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 90, dtype=np.uint8)
        progress = i / max(1, count - 1)
        for k, face in enumerate(faces):
            room = width - face.shape[1]
            x = round(room * (progress if k % 2 == 0 else 1 - progress))
            y = k * band + max(0, (band - face.shape[0]) // 2)
            frame[y:y + face.shape[0], x:x + face.shape[1]] = face[: height - y, : width - x]
        frames.append(frame)
    return write_video(path, frames, fps)

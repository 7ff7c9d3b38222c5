"""Video frames: open a video with OpenCV (:class:`VideoInfo`), the sampling step, the sampled frames
(RGB, with their time stamps), and writing RGB frames back as a video file."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What OpenCV says about a video: frames per second, frame count (an estimate), size."""

    fps: float
    frames: int
    width: int
    height: int


#: Still-image formats refused as videos (an animated GIF is a video and is read).
STILL_IMAGES = ("PNG", "JPEG", "BMP", "TIFF", "WebP")


def open_video(path: str | os.PathLike) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a video with OpenCV's FFmpeg backend.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When it is not a video OpenCV can decode (a text file, an empty or truncated file, a container
        without a video stream, a still image …).
    """
    from emolib.imageio import image_signature

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such video file: {path}")
    with open(path, "rb") as file:
        still = image_signature(file.read(16))
    if still in STILL_IMAGES:
        raise ValueError(f"{path} is a {still} image, not a video: use `emolib predict {path}` for a photo")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened() or capture.get(cv2.CAP_PROP_FRAME_WIDTH) <= 0:
        capture.release()
        raise ValueError(f"{path}: not a readable video: OpenCV/FFmpeg cannot open it (not a video, a "
                         "container without a video stream such as audio only, no frame, or a file cut "
                         "before its index)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(fps=float(fps) if fps and fps > 0 else 25.0,
                     frames=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
                     width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return capture, info


def frame_step(info: VideoInfo, every: int | None = None, fps: float | None = None) -> int:
    """Frames between two sampled frames: ``every``, or the step that gives about ``fps`` per second."""
    if every is not None and fps is not None:
        raise ValueError("give either every (frames) or fps (frames per second), not both")
    if every is not None:
        if every < 1:
            raise ValueError(f"every must be at least 1, not {every}")
        return int(every)
    if fps is not None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        return max(1, round(info.fps / fps))
    return 1


def sampled_frames(capture: cv2.VideoCapture, step: int, start: int = 0, fps: float = 25.0,
                   ) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(frame index, time in seconds, RGB frame)`` of every ``step``-th frame from ``start`` (skipped
    frames are not converted). The time is the frame's time stamp in the stream (right for variable
    frame rates too); ``index / fps`` where the stream has none."""
    index = 0
    while True:
        if index >= start and (index - start) % step == 0:
            ok, bgr = capture.read()
            if not ok:
                return
            stamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
            seconds = stamp if np.isfinite(stamp) and (stamp > 0 or index == 0) else index / fps
            yield index, seconds, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        elif not capture.grab():
            return
        index += 1


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write RGB frames (all one even size) as a video file, atomically; the suffixes are
    :func:`emolib.video.make_demo_clip`'s."""
    from emolib.files import atomic_path

    path = Path(path)
    height, width = frames[0].shape[:2]
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".y4m":
            with open(tmp, "wb") as file:
                file.write(f"YUV4MPEG2 W{width} H{height} F{round(fps)}:1 Ip A1:1 C420jpeg\n".encode())
                for frame in frames:
                    file.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
        else:
            codec = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
            writer = cv2.VideoWriter(str(tmp), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*codec), fps,
                                     (width, height))
            if not writer.isOpened():
                raise ValueError(f"OpenCV cannot write {path.suffix} videos here")
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            writer.release()
    return path

"""The ``haar`` detector: OpenCV's Haar cascade ``haarcascade_frontalface_default.xml`` with the
original project's ``detectMultiScale(gray, 1.1, 5)``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emolib.detect.base import Detector, Face, register_detector


@register_detector("haar")
class HaarDetector(Detector):
    """OpenCV Haar cascade, as the original project: ``detectMultiScale(gray, 1.1, 5)``.

    Parameters
    ----------
    scale_factor, min_neighbors : float, int
        The cascade's parameters (the original's 1.1 and 5).
    min_size : int
        Smallest face side in detection pixels (OpenCV's default 0 = the cascade's 24 px).
    cascade : str or path, optional
        Cascade XML (default: OpenCV's ``haarcascade_frontalface_default.xml``).
    max_side : int or None
        Larger images are reduced to this side for detection (None: never).
    min_face : int or None
        Smallest face (image pixels) that must be found: the image is reduced until such a face
        spans the cascade's 24-pixel window, which is faster (None: full resolution).
    second_look : bool
        Look again at an image without a found face: larger, then brightened (see :meth:`detect`).
    """

    name = "haar"
    native_face = 24

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 0,
                 cascade: str | os.PathLike | None = None, max_side: int | None = 1280,
                 min_face: int | None = None, second_look: bool = True):
        import cv2
        super().__init__(max_side, min_face, second_look)
        path = str(cascade or Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml")
        self.classifier = cv2.CascadeClassifier(path)
        if self.classifier.empty():
            raise FileNotFoundError(f"could not load the Haar cascade {path}")
        self.cascade = path
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def _detect(self, image: np.ndarray) -> list[Face]:
        import cv2
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        boxes = self.classifier.detectMultiScale(gray, self.scale_factor, self.min_neighbors,
                                                 minSize=(self.min_size, self.min_size))
        return [Face(tuple(int(v) for v in box)) for box in np.asarray(boxes).reshape(-1, 4)]

    def info(self) -> dict:
        return {**super().info(), "cascade": Path(self.cascade).name, "scale_factor": self.scale_factor,
                "min_neighbors": self.min_neighbors}

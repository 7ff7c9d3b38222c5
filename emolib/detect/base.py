"""What every face detector shares: :class:`Face`, the :class:`Detector` base class (the detection
scale rule, the second look, boxes scaled back and clipped) and the registry plug-ins join.

Every detector takes an RGB ``uint8`` array and returns :class:`Face` objects whose ``box`` is
``(x, y, w, h)`` in ints, in the pixels of the image it was given, clipped to the image. A detector
module registers its class with ``@register_detector("name")``; :mod:`emolib.detect` looks it up.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from emolib.registry import Registry

#: Smallest image side a detector looks at; smaller images have no detectable face.
MIN_IMAGE_SIDE = 16
#: Shorter side (pixels) an image is detected at, at least: smaller images (face crops, thumbnails)
#: are enlarged to it, and ``min_face`` never reduces an image below it: YuNet finds far more of
#: FER2013's 48 px test crops once they are enlarged to about this side (bench/wild.py's last table).
MIN_DETECTION_SIDE = 160
#: Mean gray level (0-255) under which an image without a found face is looked at again brightened
#: (bench/wild.py's low-light scenes have means of 12-32, median 23, over 20 of them).
DARK_MEAN = 90
#: Mean brightness (0-1) :func:`brighten` lifts a dark image to.
BRIGHT_MEAN = 0.45


def brighten(image: np.ndarray) -> np.ndarray:
    """``image`` (uint8) with a gamma curve that takes its mean brightness to :data:`BRIGHT_MEAN`."""
    mean = max(float(image.mean()) / 255.0, 1e-3)
    gamma = math.log(BRIGHT_MEAN) / math.log(mean) if mean < 1.0 else 1.0
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return table[image]


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes
    ----------
    box : tuple of int
        ``(x, y, w, h)`` in image pixels, inside the image.
    score : float or None
        Detector confidence (YuNet), None for detectors without one (Haar).
    landmarks : tuple or None
        Five ``(x, y)`` points from YuNet: right eye, left eye (of the person, so the right eye is on
        the image's left), nose tip, right and left mouth corners.
    """

    box: tuple[int, int, int, int]
    score: float | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None

    def as_dict(self) -> dict:
        x, y, w, h = self.box
        return {"x": x, "y": y, "w": w, "h": h}


class Detector:
    """Base class: a face detector is called with an RGB uint8 image and returns faces.

    Subclasses implement :meth:`_detect` on an image already reduced to at most ``max_side`` pixels
    on its longer side; boxes are scaled back here. Calls are serialised by a lock, because OpenCV's
    detectors keep per-call state.
    """

    name = "detector"
    #: Face side (pixels) the detector still finds reliably on the image it is given.
    native_face = 20

    def __init__(self, max_side: int | None = None, min_face: int | None = None, second_look: bool = True):
        self.max_side = max_side
        self.min_face = min_face
        self.second_look = second_look
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray) -> list[Face]:
        return self.detect(image)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in RGB ``uint8`` ``image`` (h, w, 3), largest first.

        An image in which no face is found gets a second look (``second_look``): at twice the
        ``max_side`` when it had been reduced, then brightened (:func:`brighten`) when it is dark
        (mean gray level under :data:`DARK_MEAN`). Images with faces cost one pass, as before.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"detectors take RGB uint8 images (h, w, 3), not {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        if min(height, width) < MIN_IMAGE_SIDE:
            return []
        scale = self.detection_scale(height, width)
        faces = self._detect_scaled(image, scale)
        if not faces and self.second_look:
            if scale < 1.0 and self.max_side:
                scale = min(1.0, 2 * self.max_side / max(height, width))
                faces = self._detect_scaled(image, scale)
            if not faces and image.mean() < DARK_MEAN:
                faces = self._detect_scaled(brighten(image), scale)
        return sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True)

    def _detect_scaled(self, image: np.ndarray, scale: float) -> list[Face]:
        """Faces found on ``image`` resized by ``scale``, in the pixels of ``image``."""
        import cv2
        height, width = image.shape[:2]
        small = image
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            if min(small.shape[:2]) < MIN_IMAGE_SIDE:  # max_side on a very long, thin image
                return []
        with self._lock:
            faces = self._detect(np.ascontiguousarray(small))
        return [face for face in (_rescale(face, scale, width, height) for face in faces) if face is not None]

    def detection_scale(self, height: int, width: int) -> float:
        """Factor applied to an image before detection.

        The rule: an image whose shorter side is under :data:`MIN_DETECTION_SIDE` is enlarged to it
        (a face crop or a thumbnail: its face would be too small, or too tight, for the detector);
        a larger one is reduced so its longer side is at most ``max_side``, and further while faces
        of ``min_face`` pixels stay at ``native_face`` pixels, but never below a shorter side of
        :data:`MIN_DETECTION_SIDE`: ``min_face`` only ever speeds up large images. ``max_side`` wins
        over the enlargement (a very long, thin image).
        """
        short, long = min(height, width), max(height, width)
        floor = MIN_DETECTION_SIDE / short
        scale = max(1.0, floor)
        if self.min_face:
            scale = min(scale, max(self.native_face / self.min_face, floor))
        if self.max_side and long * scale > self.max_side:
            scale = self.max_side / long
        return scale

    def _detect(self, image: np.ndarray) -> list[Face]:  # pragma: no cover - abstract
        raise NotImplementedError

    def info(self) -> dict:
        """What this detector is, for logs and the API's /health."""
        return {"name": self.name, "max_side": self.max_side, "min_face": self.min_face,
                "second_look": self.second_look}


def _rescale(face: Face, scale: float, width: int, height: int) -> Face | None:
    """Scale a face found on a resized image back to the original pixels, clipped to the image."""
    x, y, w, h = (float(v) / scale for v in face.box)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return None  # a network can output garbage on garbage input
    x0, y0 = round(min(max(x, 0.0), width)), round(min(max(y, 0.0), height))
    x1, y1 = round(min(max(x + w, 0.0), width)), round(min(max(y + h, 0.0), height))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    landmarks = None
    if face.landmarks is not None:
        points = tuple((float(px) / scale, float(py) / scale) for px, py in face.landmarks)
        if all(math.isfinite(v) for point in points for v in point):
            landmarks = points
    return Face((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), face.score, landmarks)


#: name → factory(**options) returning a Detector (looked up by :func:`emolib.detect.get_detector`)
DETECTORS: Registry = Registry("detector")


def register_detector(name: str):
    """Decorator: register a detector class or factory under ``name``."""
    return DETECTORS.register(name)

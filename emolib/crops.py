"""Crop geometry: boxes grown by a margin and squared, box overlap, the eye line, regions cut past the
image's border, and detected faces turned into the model's input.

Boxes are ``(x, y, w, h)`` in image pixels. Both croppers use these pieces: :func:`crop_face` (faces
found by :mod:`emolib.detect`, at prediction time) and :class:`emolib.boxes.Crops` (annotated boxes,
while the dataset cache is built).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from emolib.detect.base import Face

#: How :func:`cut_region` fills the part of a region outside the image.
BORDERS = ("replicate", "zeros")


def expand_box(box: Sequence[float], margin: float = 0.0, square: bool = False) -> tuple[float, ...]:
    """``(x, y, w, h)`` made a square on its longer side if ``square``, keeping the centre, then grown
    by ``margin`` (fraction of each side) on each side. The result may leave the image."""
    x, y, w, h = (float(v) for v in box)
    if square:
        side = max(w, h)
        x, y, w, h = x + (w - side) / 2, y + (h - side) / 2, side, side
    return x - margin * w, y - margin * h, w * (1 + 2 * margin), h * (1 + 2 * margin)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (0 when they do not overlap)."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    inter = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def eye_line_angle(first: Sequence[float], second: Sequence[float]) -> float:
    """Angle in degrees of the line from eye point ``first`` (the image-left eye) to ``second`` (0 = level),
    computed in the points' own precision."""
    return float(np.degrees(np.arctan2(second[1] - first[1], second[0] - first[0])))


def eye_angle(face: Face) -> float:
    """The eye line's angle (:func:`eye_line_angle`) of a detected face; 0 without landmarks."""
    if face.landmarks is None:
        return 0.0
    return eye_line_angle(face.landmarks[0], face.landmarks[1])


def cut_region(image: np.ndarray, x: int, y: int, w: int, h: int, *, border: str = "replicate") -> np.ndarray:
    """The ``w`` × ``h`` region of ``image`` at ``(x, y)``; its part outside the image repeats the image's
    border (``"replicate"``) or is black (``"zeros"``). A region wholly outside the image is black."""
    import cv2
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, not {border!r}")
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:  # box wholly outside: nothing sensible to show
        return np.zeros((h, w, *image.shape[2:]), dtype=image.dtype)
    patch = image[y0:y1, x0:x1]
    pads = (y0 - y, y + h - y1, x0 - x, x + w - x1)
    if any(pads):
        if border == "zeros":
            patch = cv2.copyMakeBorder(patch, *pads, cv2.BORDER_CONSTANT, value=0)
        else:
            patch = cv2.copyMakeBorder(patch, *pads, borderType=cv2.BORDER_REPLICATE)
    return patch


def crop_face(image: np.ndarray, face: Face | Sequence[int], size: tuple[int, int], *, channels: int = 1,
              margin: float = 0.0, square: bool = False, align: bool = False) -> np.ndarray:
    """One face of RGB ``image`` (a :class:`~emolib.detect.base.Face` or an ``(x, y, w, h)`` box) as a
    ``(h, w, channels)`` uint8 crop of ``size = (h, w)``.

    The box is grown by ``margin`` and made ``square`` if asked; parts outside the image repeat the
    border. With ``align`` and landmarks, the crop is rotated about the face centre so the eyes are
    level. Downscaling uses area averaging (no aliasing).
    """
    import cv2
    detected = hasattr(face, "box")  # a Face, not a bare box
    box = face.box if detected else tuple(face)
    x, y, w, h = expand_box(box, margin, square)
    out_h, out_w = size
    angle = eye_angle(face) if align and detected else 0.0
    if abs(angle) > 1.0:
        # rotate about the face centre straight into a box-sized patch, then resize
        cx, cy = x + w / 2, y + h / 2
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        matrix[0, 2] += w / 2 - cx
        matrix[1, 2] += h / 2 - cy
        patch = cv2.warpAffine(image, matrix, (max(1, round(w)), max(1, round(h))), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    else:
        patch = cut_region(image, round(x), round(y), max(1, round(w)), max(1, round(h)))
    interpolation = cv2.INTER_AREA if patch.shape[0] > out_h or patch.shape[1] > out_w else cv2.INTER_LINEAR
    patch = cv2.resize(patch, (out_w, out_h), interpolation=interpolation)
    if channels == 1:
        return cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)[..., None]
    return patch


def crop_faces(image: np.ndarray, faces: Sequence[Face], size: tuple[int, int], *, channels: int = 1,
               margin: float = 0.0, square: bool = False, align: bool = False) -> np.ndarray:
    """All ``faces`` of ``image`` as one uint8 batch ``(n, h, w, channels)``."""
    crops = [crop_face(image, face, size, channels=channels, margin=margin, square=square, align=align)
             for face in faces]
    if not crops:
        return np.zeros((0, *size, channels), dtype=np.uint8)
    return np.stack(crops)

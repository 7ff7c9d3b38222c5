"""Face crops from annotation boxes: box geometry (margin, square) and eye-line alignment.

Formats whose faces are boxes in larger photos (``affectnet``, ``expw``) give their listing a
:class:`Crops` (a box file's: :func:`emolib.formats.read_box_file`); :func:`emolib.data.load_split` then
decodes each row's crop (:func:`emolib.formats.decode_crop`), once, into the cache.
A source names its file and, where a photo holds several faces, the face: ``photo.jpg#face=2``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from emolib.crops import cut_region, expand_box, eye_line_angle

FACE_MARK = "#face="
#: Points of the left and right eye in the 68-point (iBUG) landmark scheme that AffectNet uses.
EYES_68 = (slice(36, 42), slice(42, 48))


def face_source(path: str, face: int) -> str:
    """The source name of face ``face`` of photo ``path``."""
    return f"{path}{FACE_MARK}{face}"


def source_file(source: str) -> str:
    """The image file of a source (``photo.jpg#face=2`` → ``photo.jpg``)."""
    return source.rpartition(FACE_MARK)[0] or source


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """(n, 68, 2) landmarks → (n, 4) eye centres ``left x, left y, right x, right y``."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    return np.concatenate([landmarks[:, part].mean(axis=1) for part in EYES_68], axis=1)


@dataclass
class Crops:
    """Per-row face boxes of a listing and how to crop them.

    Parameters
    ----------
    boxes : (n, 4) float array
        ``x, y, w, h`` in pixels; a row of NaN means the whole image is the face.
    eyes : (n, 4) float array or None
        Eye centres (:func:`eye_centres`) for ``align``; NaN where unknown.
    margin, square, align
        See :func:`emolib.crops.expand_box` (a square first, then the margin); ``align`` rotates each
        face so that its eye line is level.
    """

    boxes: np.ndarray
    eyes: np.ndarray | None = None
    margin: float = 0.0
    square: bool = True
    align: bool = False

    def digest(self) -> bytes:
        """What the decoded crops depend on, for the cache key."""
        digest = hashlib.sha256(f"{self.margin}|{self.square}|{self.align}".encode())
        digest.update(np.ascontiguousarray(self.boxes, dtype=np.float32).tobytes())
        if self.align and self.eyes is not None:
            digest.update(np.ascontiguousarray(self.eyes, dtype=np.float32).tobytes())
        return digest.digest()

    def cut(self, image: np.ndarray, row: int, size: int) -> np.ndarray | None:
        """Row ``row``'s face of ``image`` as ``size`` × ``size`` (channels as ``image``), or None when
        its box is empty or lies outside the image. Parts of the region outside the image are black."""
        height, width = image.shape[:2]
        box = self.boxes[row]
        if np.isnan(box).any():
            box = (0, 0, width, height)
        x, y, w, h = (float(v) for v in box)
        if not (w > 0 and h > 0) or x >= width or y >= height or x + w <= 0 or y + h <= 0:
            return None
        cx, cy, cw, ch = expand_box(box, self.margin, self.square)
        angle = 0.0
        if self.align and self.eyes is not None and not np.isnan(self.eyes[row]).any():
            angle = eye_line_angle(self.eyes[row][:2], self.eyes[row][2:])
        if angle == 0.0:
            # crop (zero padding outside the image), then the same resize as every other format
            left, top = int(round(cx)), int(round(cy))
            region = cut_region(image, left, top, int(round(cx + cw)) - left, int(round(cy + ch)) - top,
                                border="zeros")
            shrink = region.shape[0] > size
            interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            return cv2.resize(region, (size, size), interpolation=interpolation)
        # rotate about the region's centre by the eye line's angle, scaled to size, in one warp
        matrix = cv2.getRotationMatrix2D((cx + cw / 2, cy + ch / 2), angle, 1.0)
        scale = np.array([[size / cw, 0], [0, size / ch]])
        matrix = scale @ matrix
        matrix[:, 2] += np.array([size / 2, size / 2]) - scale @ np.array([cx + cw / 2, cy + ch / 2])
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA, borderValue=0)

"""Face detectors and face crops.

A registry turns a name into a detector, as ``models.BACKBONES`` does for backbones:

* ``haar`` — OpenCV's Haar cascade ``haarcascade_frontalface_default.xml`` with the original project's
  ``detectMultiScale(gray, 1.1, 5)``;
* ``yunet`` — OpenCV's YuNet CNN (``cv2.FaceDetectorYN``, opencv_zoo 2023mar): more accurate, gives
  five landmarks (eyes, nose, mouth corners) and a score. Its 0.2 MB model file is taken from a local
  path, ``$EMOLIB_MODEL_DIR``, the cache (``$EMOLIB_CACHE`` or ``~/.cache/emolib``) or the shared
  folder, and otherwise downloaded once from opencv_zoo with a sha256 check.

Every detector takes an RGB ``uint8`` array and returns :class:`Face` objects whose ``box`` is
``(x, y, w, h)`` in ints, in the pixels of the image it was given, clipped to the image.
:func:`crop_faces` turns faces into the model's input (margin, square, eye alignment, resize, gray).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolib import paths
from emolib.files import atomic_path, sha256_file
from emolib.registry import Registry

YUNET_FILE = "face_detection_yunet_2023mar.onnx"
YUNET_URL = ("https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
             "face_detection_yunet_2023mar.onnx")
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
#: A download larger than this is refused (the real file is 0.2 MB).
MAX_DOWNLOAD_BYTES = 16 * 1024 * 1024

#: Smallest image side a detector looks at; smaller images have no detectable face.
MIN_IMAGE_SIDE = 16
#: Shorter side (pixels) an image is detected at, at least: smaller images (face crops, thumbnails)
#: are enlarged to it, and ``min_face`` never reduces an image below it: YuNet finds far more of
#: FER2013's 48 px test crops once they are enlarged to about this side (bench/wild.py's last table).
MIN_DETECTION_SIDE = 160
#: FaceDetectorYN pads its input up to a multiple of this itself; issue 34 saw leftovers of earlier
#: images leak into that padding (not reproduced with OpenCV 4.14), so YuNetDetector pads with zeros.
YUNET_STRIDE = 32
#: YuNet's default score threshold, chosen by ``bench/wild.py --thresholds`` (second look on): of the FER+
#: faces over all its conditions, 0.7 found 94.7 %, 0.6 95.9 %, 0.5 96.8 %, 0.4 97.5 %, 0.3 98.0 %; in
#: 180 faceless scenes 0.3 found 5 false faces, 0.4-0.7 none. 0.5 keeps a margin from the false faces.
YUNET_SCORE_THRESHOLD = 0.5
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


# ---------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------

#: name → factory(**options) returning a Detector
DETECTORS: Registry = Registry("detector")


def register_detector(name: str):
    """Decorator: register a detector class or factory under ``name``."""
    return DETECTORS.register(name)


def list_detectors() -> list[str]:
    """The names of the registered detectors."""
    return DETECTORS.names()


def get_detector(name: str | Detector | None = None, **options) -> Detector:
    """A detector by name (``None``: :func:`default_detector_name`); a Detector is returned as is."""
    if isinstance(name, Detector):
        return name
    return DETECTORS.lookup(name or default_detector_name())(**options)


def default_detector_name() -> str:
    """``"yunet"`` when its model file is available locally (no download), else ``"haar"``."""
    return "yunet" if find_yunet() is not None else "haar"


def detect_faces(image, detector: str | Detector | None = None) -> list[Face]:
    """Convenience: decode ``image`` (path, bytes, PIL, array) and return its faces."""
    from emolib.imageio import load_image

    return get_detector(detector).detect(load_image(image))


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


@register_detector("yunet")
class YuNetDetector(Detector):
    """OpenCV YuNet (``cv2.FaceDetectorYN``): boxes, five landmarks and a score per face.

    Parameters
    ----------
    model_path : path, optional
        The ONNX file (default: :func:`yunet_model_path`, which may download it once).
    score_threshold, nms_threshold, top_k : float, float, int
        YuNet's parameters (score threshold: :data:`YUNET_SCORE_THRESHOLD`).
    max_side : int or None
        Larger images are reduced so that their longer side is ``max_side`` for detection (YuNet's
        cost grows with the pixel count); boxes are scaled back. Faces smaller than about
        ``12 × long_side / max_side`` pixels are then missed.
    min_face : int or None
        Smallest face (image pixels) that must be found: the image is reduced further until such a
        face spans ``native_face`` (20) pixels, which is faster (None: only ``max_side`` applies).
    second_look : bool
        Look again at an image without a found face: larger, then brightened (see :meth:`detect`).
    download : bool
        Allow the download when no local file is found.
    """

    name = "yunet"

    def __init__(self, model_path: str | os.PathLike | None = None,
                 score_threshold: float = YUNET_SCORE_THRESHOLD,
                 nms_threshold: float = 0.3, top_k: int = 5000, max_side: int | None = 640,
                 min_face: int | None = None, second_look: bool = True, download: bool = True):
        import cv2
        super().__init__(max_side, min_face, second_look)
        self.model_path = yunet_model_path(model_path, download=download)
        self.score_threshold = score_threshold
        try:
            self.net = cv2.FaceDetectorYN.create(str(self.model_path), "", (320, 320), score_threshold,
                                                 nms_threshold, top_k)
        except cv2.error as error:
            raise ValueError(f"could not load the YuNet model {self.model_path}: {error}") from error
        self._input_size: tuple[int, int] | None = None

    def _detect(self, image: np.ndarray) -> list[Face]:
        import cv2
        height, width = image.shape[:2]
        stride = YUNET_STRIDE  # zeros at the bottom and right: boxes keep their coordinates
        padded = np.zeros((-(-height // stride) * stride, -(-width // stride) * stride, 3), np.uint8)
        padded[:height, :width] = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        size = (padded.shape[1], padded.shape[0])
        if self._input_size != size:
            self.net.setInputSize(size)
            self._input_size = size
        _, found = self.net.detect(padded)
        faces = []
        for row in (found if found is not None else []):
            x, y, w, h = (float(v) for v in row[:4])
            points = tuple((float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5))
            faces.append(Face((x, y, w, h), float(row[14]), points))  # float box, rounded by _rescale
        return faces

    def info(self) -> dict:
        return {**super().info(), "model": self.model_path.name, "score_threshold": self.score_threshold}


# ---------------------------------------------------------------------------------------------------
# The YuNet model file: local, cached, or downloaded with a sha256 check
# ---------------------------------------------------------------------------------------------------

def find_yunet() -> Path | None:
    """The YuNet file if it is available without download: ``$EMOLIB_MODEL_DIR``, the cache (sha256
    checked), or the shared folder's ``models/`` (``$EMOLIB_SHARED``); else None."""
    model_dir = paths.model_files_dir()
    if model_dir is not None and (model_dir / YUNET_FILE).is_file():
        return model_dir / YUNET_FILE
    cached = paths.cache_dir() / YUNET_FILE
    if cached.is_file() and sha256_file(cached) == YUNET_SHA256:
        return cached
    shared = (paths.shared_dir() / "models") / YUNET_FILE
    if shared.is_file():
        return shared
    return None


def yunet_model_path(path: str | os.PathLike | None = None, *, download: bool = True,
                     url: str = YUNET_URL, fetch: Callable[[str], object] | None = None) -> Path:
    """Path of the YuNet ONNX file: ``path`` if given, else :func:`find_yunet`, else a download.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist, or nothing is found and ``download`` is False.
    """
    if path is not None:
        path = Path(path).expanduser()
        if path.is_dir():
            path = path / YUNET_FILE
        if not path.is_file():
            raise FileNotFoundError(f"YuNet model not found at {path}")
        return path
    found = find_yunet()
    if found is not None:
        return found
    if not download:
        raise FileNotFoundError(f"YuNet model {YUNET_FILE} not found in $EMOLIB_MODEL_DIR, "
                                f"{paths.cache_dir()} or {paths.shared_dir() / 'models'}; "
                                f"download it from {YUNET_URL}")
    return download_file(url, paths.cache_dir() / YUNET_FILE, YUNET_SHA256, fetch=fetch)


def _urlopen(url: str):
    return urllib.request.urlopen(url, timeout=60)  # noqa: S310 - fixed https URL or a caller's file://


def download_file(url: str, destination: str | os.PathLike, sha256: str, *,
                  fetch: Callable[[str], object] | None = None,
                  max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """Download ``url`` to ``destination`` atomically, keeping it only if its sha256 is ``sha256``.

    ``fetch(url)`` returns a readable binary file object (default: ``urllib.request.urlopen``, which
    also reads ``file://`` URLs). A file already at ``destination`` with the right digest is kept.

    Raises
    ------
    ValueError
        On a digest mismatch or a download larger than ``max_bytes`` (nothing is written).
    FileNotFoundError
        If the download fails (offline, refused, not found), saying where to put the file instead.
    """
    destination = Path(destination)
    if destination.is_file() and sha256_file(destination) == sha256:
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with atomic_path(destination) as tmp:  # renamed into place only when complete and verified
        try:
            with open(tmp, "wb") as out, (fetch or _urlopen)(url) as response:
                for block in iter(lambda: response.read(1 << 16), b""):
                    size += len(block)
                    if size > max_bytes:
                        raise ValueError(f"download of {url} exceeds {max_bytes} bytes; refused")
                    digest.update(block)
                    out.write(block)
        except OSError as error:  # URLError, timeouts, refused connections, disk full
            raise FileNotFoundError(f"could not download {url} ({getattr(error, 'reason', None) or error}); "
                                    f"download it yourself and put it in $EMOLIB_MODEL_DIR or "
                                    f"{destination.parent}") from error
        if digest.hexdigest() != sha256:
            raise ValueError(f"sha256 mismatch for {url}: got {digest.hexdigest()}, expected {sha256}")
    return destination


# ---------------------------------------------------------------------------------------------------
# Crops
# ---------------------------------------------------------------------------------------------------

def expand_box(box: Sequence[float], margin: float = 0.0, square: bool = False) -> tuple[float, ...]:
    """Grow ``(x, y, w, h)`` by ``margin`` (fraction of each side, on each side) and, if ``square``,
    to a square on its longer side, keeping the centre. The result may leave the image."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    if square:
        w = h = max(w, h)
    return cx - w / 2, cy - h / 2, w, h


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (0 when they do not overlap)."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    inter = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def eye_angle(face: Face) -> float:
    """Angle in degrees of the line from the image-left eye to the image-right eye (0 = level)."""
    if face.landmarks is None:
        return 0.0
    (rx, ry), (lx, ly) = face.landmarks[0], face.landmarks[1]
    return math.degrees(math.atan2(ly - ry, lx - rx))


def crop_face(image: np.ndarray, face: Face | Sequence[int], size: tuple[int, int], *, channels: int = 1,
              margin: float = 0.0, square: bool = False, align: bool = False) -> np.ndarray:
    """One face of RGB ``image`` as a ``(h, w, channels)`` uint8 crop of ``size = (h, w)``.

    The box is grown by ``margin`` and made ``square`` if asked; parts outside the image repeat the
    border. With ``align`` and landmarks, the crop is rotated about the face centre so the eyes are
    level. Downscaling uses area averaging (no aliasing).
    """
    import cv2
    box = face.box if isinstance(face, Face) else tuple(face)
    x, y, w, h = expand_box(box, margin, square)
    out_h, out_w = size
    angle = eye_angle(face) if align and isinstance(face, Face) else 0.0
    if abs(angle) > 1.0:
        # rotate about the face centre straight into a box-sized patch, then resize
        cx, cy = x + w / 2, y + h / 2
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        matrix[0, 2] += w / 2 - cx
        matrix[1, 2] += h / 2 - cy
        patch = cv2.warpAffine(image, matrix, (max(1, round(w)), max(1, round(h))), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    else:
        patch = _crop_padded(image, round(x), round(y), max(1, round(w)), max(1, round(h)))
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


def _crop_padded(image: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    import cv2
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:  # box wholly outside: nothing sensible to show
        return np.zeros((h, w, image.shape[2]), dtype=image.dtype)
    patch = image[y0:y1, x0:x1]
    pads = (y0 - y, y + h - y1, x0 - x, x + w - x1)
    if any(pads):
        patch = cv2.copyMakeBorder(patch, *pads, borderType=cv2.BORDER_REPLICATE)
    return patch

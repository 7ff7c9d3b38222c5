"""The ``yunet`` detector: OpenCV's YuNet CNN (``cv2.FaceDetectorYN``, opencv_zoo 2023mar), more
accurate than Haar, with five landmarks (eyes, nose, mouth corners) and a score per face; and its
0.2 MB model file, taken from a local path, ``$EMOLIB_MODEL_DIR``, the cache (``$EMOLIB_CACHE`` or
``~/.cache/emolib``) or the shared folder, and otherwise downloaded once from opencv_zoo with a sha256
check."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emolib import paths
from emolib.detect.base import Detector, Face, register_detector
from emolib.files import atomic_path, sha256_file

YUNET_FILE = "face_detection_yunet_2023mar.onnx"
YUNET_URL = ("https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
             "face_detection_yunet_2023mar.onnx")
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
#: A download larger than this is refused (the real file is 0.2 MB).
MAX_DOWNLOAD_BYTES = 16 * 1024 * 1024
#: FaceDetectorYN pads its input up to a multiple of this itself; issue 34 saw leftovers of earlier
#: images leak into that padding (not reproduced with OpenCV 4.14), so YuNetDetector pads with zeros.
YUNET_STRIDE = 32
#: YuNet's default score threshold, chosen by ``bench/wild.py --thresholds`` (second look on): of the FER+
#: faces over all its conditions, 0.7 found 94.7 %, 0.6 95.9 %, 0.5 96.8 %, 0.4 97.5 %, 0.3 98.0 %; in
#: 180 faceless scenes 0.3 found 5 false faces, 0.4-0.7 none. 0.5 keeps a margin from the false faces.
YUNET_SCORE_THRESHOLD = 0.5


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
# The model file: local, cached, or downloaded with a sha256 check
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

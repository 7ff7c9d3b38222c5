"""Face detectors: a registry turns a name into a detector, as ``emolib.backbones.BACKBONES`` does for
backbones.

* ``haar`` (:mod:`emolib.detect.haar`) — OpenCV's Haar cascade, the original project's detector;
* ``yunet`` (:mod:`emolib.detect.yunet`) — OpenCV's YuNet CNN: more accurate, five landmarks and a
  score per face; its model file is found locally or downloaded once with a sha256 check.

What every detector shares (:class:`Face`, :class:`Detector`, the detection scale rule) is in
:mod:`emolib.detect.base`. :func:`crop_faces` (from :mod:`emolib.crops`) turns faces into the model's
input (margin, square, eye alignment, resize, gray).
"""

from __future__ import annotations

from emolib.crops import box_iou, crop_face, crop_faces, expand_box, eye_angle  # noqa: F401 - re-exported
from emolib.detect.base import (  # noqa: F401 - re-exported
    BRIGHT_MEAN,
    DARK_MEAN,
    DETECTORS,
    MIN_DETECTION_SIDE,
    MIN_IMAGE_SIDE,
    Detector,
    Face,
    brighten,
    register_detector,
)
from emolib.detect.haar import HaarDetector  # noqa: F401 - registers "haar"
from emolib.detect.yunet import (  # noqa: F401 - registers "yunet"; the rest re-exported
    MAX_DOWNLOAD_BYTES,
    YUNET_FILE,
    YUNET_SCORE_THRESHOLD,
    YUNET_SHA256,
    YUNET_STRIDE,
    YUNET_URL,
    YuNetDetector,
    download_file,
    find_yunet,
    yunet_model_path,
)


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

"""Photo → faces → emotions: :class:`EmotionPredictor` and its stream of images.

The predictor loads its model and detector once, then for each image: decodes it safely
(:mod:`emolib.imageio`), finds the faces (:mod:`emolib.detect`), crops them to the model's input and
classifies **all faces in one batched model call** (``predict_on_batch``: a compiled function, several
times cheaper than an eager ``model(x)`` or ``model.predict`` for a handful of faces). With flip TTA
the mirrored crops go into the same call. The result is the result dict (declared in
:mod:`emolib.results`)::

    {"faces_detected": 1, "detector": "yunet",
     "predictions": [{"emotion": "happy", "label": "Joie", "emoji": "😄", "confidence": 87.1,
                      "box": {"x": 178, "y": 63, "w": 90, "h": 113},
                      "probabilities": {"angry": 0.01, ..., "neutral": 0.05}}]}

``confidence`` is a percentage (0–100); ``probabilities`` are fractions that sum to 1, in the model's
label order. ``uncertain`` is true when the confidence is below the model card's "not sure" threshold
(``uncertain_below``, chosen on the validation split for a target precision by ``emolib calibrate``
and every training run; false for a model whose card has none).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from emolib import detect as D
from emolib import imageio, runtimes
from emolib import labels as L
from emolib.modelcards import LoadedModel, split_outputs

#: Faces per model call at most (larger sets are split; memory stays bounded).
MAX_BATCH = 256
#: Images per chunk of a stream (:meth:`EmotionPredictor.predict_chunks`): one model call for all their
#: faces, and one write of their results, for every command that streams images (files, folders, Ray,
#: video frames).
CHUNK = 32
#: What ``fallback`` may say to do with an image in which no face is found.
FALLBACKS = ("none", "whole")
#: An image with no face found is plausibly one face crop when its longer side is at most this
#: (pixels) and its sides are within a factor 2 of each other.
FALLBACK_MAX_SIDE = 400


@dataclass
class Outcome:
    """One image of a stream: the key it came with, and its result dict or why it could not be used."""

    key: Hashable
    result: dict | None
    error: str | None = None


@dataclass
class _Prepared:
    """One image after detection and cropping, before classification (internal)."""

    crops: np.ndarray  # (n, h, w, c) uint8
    boxes: list[dict]
    detector: str


class EmotionPredictor:
    """Detect faces and classify their emotions, with a model and a detector loaded once.

    Parameters
    ----------
    model : path, LoadedModel or None
        Model directory, model file (``.keras`` / ``.onnx``) or card; a
        :class:`emolib.modelcards.LoadedModel`; or None for the model shipped with emolib
        (``emolib/shipped_models/emolib-ferplus``).
    detector : {"yunet", "haar"}, Detector or None
        Face detector; None picks YuNet when its file is available locally, else Haar. Created on
        first use, so ``whole_image`` predictions never need one.
    flip_tta : bool
        Average each face's probabilities with those of its mirror image (same batched call).
    language : {"fr", "en"}
        Language of the ``label`` field (French by default, as the original project).
    margin : float
        Grow each detected box by this fraction on every side before cropping.
    square : bool
        Crop a square around each face (FER-style crops; YuNet boxes are taller than wide).
    align : bool
        Rotate each crop so that the eyes are level (needs landmarks: YuNet).
    min_face : int or None
        Smallest face side, in image pixels, that the detector must find. The image is shrunk for
        detection as far as that allows (see :meth:`emolib.detect.Detector.detection_scale`), which
        makes detection faster but misses faces well above ``min_face``: on ``bench/wild.py``'s
        scenes (640×480, faces of 60-200 px), ``min_face=40`` found 69 % of the faces and None 94 %.
        Default None: every face the detector can see (only its ``max_side`` applies). Ignored when
        ``detector`` is a Detector instance.
    max_pixels : int or None
        Decompression-bomb limit passed to :func:`emolib.imageio.load_image`.
    fallback : {"none", "whole"}
        When no face is found in an image that is plausibly one face crop (its longer side at most
        :data:`FALLBACK_MAX_SIDE` pixels, its sides within a factor 2), ``"whole"`` classifies the
        whole image, reported with ``"detector": "none"`` as for ``whole_image``; ``"none"`` gives no
        prediction.
    runtime : {"auto", "keras", "onnx"}
        What runs the model (:mod:`emolib.runtimes`): ``onnx`` (ONNX Runtime, no Keras imported),
        ``keras``, or ``auto``: ONNX when onnxruntime is installed and the model has ``model.onnx``.
        Ignored when ``model`` is a LoadedModel.

    Notes
    -----
    Thread-safe: detectors serialise their own calls and model calls hold a lock, while decoding and
    cropping run in parallel. ``predict`` accepts a path, bytes, a PIL image or an RGB array.
    """

    def __init__(self, model=None, detector: str | D.Detector | None = None, flip_tta: bool = False,
                 language: str = "fr", *, margin: float = 0.0, square: bool = True, align: bool = False,
                 min_face: int | None = None, max_pixels: int | None = imageio.DEFAULT_MAX_PIXELS,
                 fallback: str = "none", runtime: str = runtimes.AUTO, warmup: bool = True):
        if language not in ("fr", "en"):
            raise ValueError(f"language must be 'fr' or 'en', not {language!r}")
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {', '.join(FALLBACKS)}, not {fallback!r}")
        self.fallback = fallback
        self.loaded = model if isinstance(model, LoadedModel) else runtimes.load(model, runtime)
        self.model = self.loaded.model
        self.labels = [_canonical_or_raw(name) for name in self.loaded.labels]
        self.input_size = tuple(int(v) for v in self.loaded.input_size)
        self.channels = int(self.loaded.channels)
        #: confidence (%) below which an answer is "not sure": the card's, chosen on val (`emolib calibrate`)
        self.uncertain_below = (self.loaded.card.get("uncertain_below") or {}).get("confidence")
        if self.channels not in (1, 3):
            raise ValueError(f"model card says {self.channels} channels; emolib models take 1 or 3")
        self.flip_tta = bool(flip_tta)
        self.language = language
        self.margin = float(margin)
        self.square = bool(square)
        self.align = bool(align)
        self.max_pixels = max_pixels
        self.min_face = min_face
        self._detector_spec = detector
        self._detector: D.Detector | None = detector if isinstance(detector, D.Detector) else None
        self._detector_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._display = {name: _display(name, language) for name in self.labels}
        if warmup:
            self.warmup()

    # -- set-up --------------------------------------------------------------------------------------

    @property
    def runtime(self) -> str:
        """What runs the model: ``onnx`` or ``keras``."""
        return "onnx" if isinstance(self.model, runtimes.OnnxModel) else "keras"

    @property
    def detector(self) -> D.Detector:
        """The face detector (created on first use)."""
        if self._detector is None:
            with self._detector_lock:
                if self._detector is None:
                    self._detector = D.get_detector(self._detector_spec, min_face=self.min_face)
        return self._detector

    def warmup(self) -> None:
        """Compile the model's predict function for batch sizes 1 and 2 (later sizes reuse it)."""
        for n in (1, 2):
            self.classify(np.zeros((n, *self.input_size, self.channels), dtype=np.uint8))

    def info(self) -> dict:
        """What this predictor runs: model (path, name, backbone, labels, input), detector, options."""
        card = self.loaded.card
        detector = self._detector.info() if self._detector is not None else {"name": self._detector_spec}
        return {
            "model": {
                "path": str(self.loaded.path),
                "name": card.get("name") or self.loaded.path.parent.name,
                "backbone": card.get("backbone"),
                "labels": self.labels,
                "input_size": list(self.input_size),
                "channels": self.channels,
                "metrics": card.get("metrics"),
                "uncertain_below": card.get("uncertain_below"),
                "temperature": (card.get("calibration") or {}).get("temperature"),
            },
            "detector": detector,
            "runtime": self.runtime,
            "flip_tta": self.flip_tta,
            "language": self.language,
        }

    # -- prediction ----------------------------------------------------------------------------------

    def predict(self, image, whole_image: bool = False, explain: bool = False) -> dict:
        """Faces and emotions of one image (path, bytes, PIL image or RGB array) as the result dict.

        With ``explain``, each face also gets ``"saliency": {"png": base64 overlay, "size": [h, w]}``
        (see :meth:`explain`).

        Raises
        ------
        ValueError
            For unusable input (empty, not an image, truncated, too many pixels), see
            :mod:`emolib.imageio`. ``FileNotFoundError`` for a missing path.
        """
        if explain:
            return self.explain(image, whole_image=whole_image).result
        return self.predict_many([image], whole_image=whole_image)[0]

    def explain(self, image, whole_image: bool = False):
        """Predict, then map for each face how much each region of its crop drives the predicted emotion.

        Returns an :class:`emolib.explain.Explanation`: the result dict with a ``"saliency"`` entry per
        face, plus the crops, the occlusion maps and the whole-image overlay. Same errors as :meth:`predict`.
        """
        from emolib import explain as E

        rgb = imageio.load_image(image, max_pixels=self.max_pixels)
        prepared = self.prepare(rgb, whole_image=whole_image)
        result = self.finish([prepared])[0]
        square = self.square and not whole_image
        return E.explain_faces(result, rgb, prepared.crops, self.classify, self.labels,
                               margin=0.0 if whole_image else self.margin, square=square)

    def explain_face(self, image, face: dict) -> dict:
        """The ``"saliency"`` entry (see :meth:`explain`) of one face of a result dict in ``image``.

        The face's ``box`` is cropped as :meth:`prepare` crops it, and the map explains its ``emotion``.
        """
        from emolib import explain as E

        rgb = imageio.load_image(image, max_pixels=self.max_pixels)
        box = face["box"]
        crop = D.crop_face(rgb, (box["x"], box["y"], box["w"], box["h"]), self.input_size,
                           channels=self.channels, margin=self.margin, square=self.square)
        saliency = E.occlusion_maps(self.classify, crop[None], [self.labels.index(face["emotion"])])[0]
        return E.saliency_entry(crop, saliency)

    def predict_many(self, images: Iterable, whole_image: bool = False) -> list[dict]:
        """Result dicts of several images, classifying all their faces in one batched model call."""
        prepared = [self.prepare(image, whole_image=whole_image) for image in images]
        return self.finish(prepared)

    def predict_chunks(self, items: Iterable[tuple[Hashable, object]], whole_image: bool = False,
                       chunk: int = CHUNK) -> Iterator[list[Outcome]]:
        """The stream of images every command uses: ``(key, image)`` items in, their outcomes out, in
        order, a list per chunk of ``chunk`` images.

        Each image (path, bytes, PIL image or RGB array) is decoded, detected and cropped as it is read,
        so a chunk holds face crops rather than images; then all the chunk's faces are classified in one
        model call. An unusable image (unreadable, not an image, truncated, too large: ``ValueError`` or
        ``OSError``) gets an :class:`Outcome` with its ``error``, and the stream goes on.
        """
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1 image, not {chunk}")
        items = iter(items)
        while True:
            keys, prepared, errors = [], [], []
            for key, image in itertools.islice(items, chunk):
                keys.append(key)
                try:
                    prepared.append(self.prepare(image, whole_image=whole_image))
                    errors.append(None)
                except (ValueError, OSError) as error:
                    errors.append(str(error))
            if not keys:
                return
            results = iter(self.finish(prepared))
            yield [Outcome(key, None if error else next(results), error)
                   for key, error in zip(keys, errors, strict=True)]

    def prepare(self, image, whole_image: bool = False) -> _Prepared:
        """Decode, detect and crop one image (the part of :meth:`predict` before the model)."""
        rgb = imageio.load_image(image, max_pixels=self.max_pixels)
        height, width = rgb.shape[:2]
        if whole_image:
            return self._prepare_whole(rgb)
        detector = self.detector
        faces = detector.detect(rgb)
        if not faces and self.fallback == "whole" and _plausibly_one_face(height, width):
            return self._prepare_whole(rgb)
        crops = D.crop_faces(rgb, faces, self.input_size, channels=self.channels, margin=self.margin,
                             square=self.square, align=self.align)
        return _Prepared(crops, [face.as_dict() for face in faces], detector.name)

    def _prepare_whole(self, rgb: np.ndarray) -> _Prepared:
        height, width = rgb.shape[:2]
        crops = D.crop_faces(rgb, [D.Face((0, 0, width, height))], self.input_size, channels=self.channels)
        return _Prepared(crops, [{"x": 0, "y": 0, "w": int(width), "h": int(height)}], "none")

    def finish(self, prepared: Sequence[_Prepared]) -> list[dict]:
        """Classify the crops of prepared images in one call and build their result dicts."""
        counts = [len(p.boxes) for p in prepared]
        if sum(counts) == 0:
            return [self._result(p, np.zeros((0, len(self.labels)))) for p in prepared]
        probabilities, valence_arousal = self.model_outputs(np.concatenate([p.crops for p in prepared]))
        results, start = [], 0
        for item, count in zip(prepared, counts, strict=True):
            results.append(self._result(item, probabilities[start:start + count],
                                        None if valence_arousal is None
                                        else valence_arousal[start:start + count]))
            start += count
        return results

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, classes)`` of face crops ``(n, h, w, c)`` (uint8 or float, 0..255)."""
        return self.model_outputs(crops)[0]

    def model_outputs(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities ``(n, classes)`` of face crops, and their (n, 2) valence and arousal
        where the model has that head (else None).

        One model call for all crops (and their mirrors with flip TTA, averaged), split only beyond
        :data:`MAX_BATCH` faces.
        """
        crops = np.asarray(crops)
        n = len(crops)
        if n == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32), None
        batch = crops.astype(np.float32, copy=False)
        if self.flip_tta:
            batch = np.concatenate([batch, batch[:, :, ::-1]])
        parts = []
        with self._model_lock:
            for start in range(0, len(batch), MAX_BATCH):
                parts.append(split_outputs(self.model.predict_on_batch(batch[start:start + MAX_BATCH])))
        outputs = [None if parts[0][k] is None
                   else np.concatenate([part[k] for part in parts]).astype(np.float64) for k in (0, 1)]
        if self.flip_tta:
            outputs = [None if out is None else (out[:n] + out[n:]) / 2 for out in outputs]
        return outputs[0], outputs[1]

    def _result(self, prepared: _Prepared, probabilities: np.ndarray,
                valence_arousal: np.ndarray | None = None) -> dict:
        predictions = []
        for index, (box, probs) in enumerate(zip(prepared.boxes, probabilities, strict=True)):
            best = int(np.argmax(probs))
            emotion = self.labels[best]
            label, emoji = self._display[emotion]
            confidence = round(float(probs[best]) * 100.0, 2)
            face = {
                "emotion": emotion,
                "label": label,
                "emoji": emoji,
                "confidence": confidence,
                "uncertain": self.uncertain_below is not None and confidence < self.uncertain_below,
                "box": box,
                "probabilities": {name: round(float(p), 6)
                                  for name, p in zip(self.labels, probs, strict=True)},
            }
            if valence_arousal is not None:  # a model with a valence-arousal head: -1..1 each
                face["valence"], face["arousal"] = (round(float(v), 4) for v in valence_arousal[index])
            predictions.append(face)
        return {"faces_detected": len(predictions), "detector": prepared.detector, "predictions": predictions}


def _plausibly_one_face(height: int, width: int) -> bool:
    """A small image with sides within a factor 2: a face crop, a thumbnail (see ``fallback``)."""
    return max(height, width) <= FALLBACK_MAX_SIDE and max(height, width) <= 2 * min(height, width)


def _canonical_or_raw(name: str) -> str:
    try:
        return L.canonical(name)
    except ValueError:
        return str(name)


def _display(emotion: str, language: str) -> tuple[str, str]:
    try:
        return L.display_name(emotion, language), L.emoji(emotion)
    except (KeyError, ValueError):
        return emotion, ""

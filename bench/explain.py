"""Saliency maps checked, not just drawn: the deletion test on FER2013 test faces, and the cost per face.

    .venv/bin/python bench/explain.py [--faces 300] [--model emolib-fer2013] [--rounds 2]

For each occlusion setting (patch side / stride in pixels of the 48-pixel crop), on the same random
test faces (seed 0): the maps of the predicted class (:func:`emolib.explain.occlusion_maps`), then
:func:`emolib.explain.deletion_check`: hide the 10 % most salient pixels of each face, or 10 % random
ones (both filled with the face's mean), and compare the predicted class's mean probability. The
cost per face is timed on ``--timing-faces`` of them, the settings interleaved, ``--rounds`` times each
(best and median ms per face: this host's throughput swings ~2x with its load).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from emolib import data as D  # noqa: E402
from emolib import explain as E  # noqa: E402
from emolib.experiments import data_root  # noqa: E402
from emolib.predict import EmotionPredictor  # noqa: E402

SETTINGS = ((8, 4), (8, 8))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=200, help="faces in the deletion test")
    parser.add_argument("--timing-faces", type=int, default=32, help="faces per timing round")
    parser.add_argument("--model", default="emolib-fer2013")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds")
    parser.add_argument("--fraction", type=float, default=0.1)
    args = parser.parse_args()

    import keras

    predictor = EmotionPredictor(args.model)
    test = D.load_split("fer2013", data_root("fer2013"), "test", predictor.input_size[0], predictor.channels)
    index = np.random.default_rng(0).choice(len(test), min(args.faces, len(test)), replace=False)
    crops, truth = test.images[index], test.labels[index]
    targets = np.argmax(predictor.classify(crops), axis=1)
    E.occlusion_maps(predictor.classify, crops[:4])  # compile the batch shapes once

    # the maps of all faces once per setting, then the cost per face timed on a subset, interleaved
    maps = {setting: E.occlusion_maps(predictor.classify, crops, targets, patch=setting[0], stride=setting[1])
            for setting in SETTINGS}
    timed = crops[:args.timing_faces]
    seconds: dict[tuple, list[float]] = {s: [] for s in SETTINGS}
    for _ in range(args.rounds):
        for setting in SETTINGS:
            start = time.perf_counter()
            E.occlusion_maps(predictor.classify, timed, patch=setting[0], stride=setting[1])
            seconds[setting].append((time.perf_counter() - start) / len(timed) * 1000)

    correct = float(np.mean(np.asarray(predictor.labels)[targets] == np.asarray(test.classes)[truth]))
    print(f"FER2013 test: {len(crops)} random faces (seed 0), model {args.model} "
          f"({predictor.info()['model']['backbone']}), accuracy on them {correct:.3f}; "
          f"Keras {keras.__version__} ({keras.backend.backend()}), {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; cost per face: {args.rounds} "
          f"interleaved rounds of {len(timed)} faces\n")
    print(f"| patch / stride (px) | variants per face | ms per face, best | median | p(predicted) | "
          f"hide {args.fraction:.0%} most salient | hide {args.fraction:.0%} random | salient hurts more |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for setting in SETTINGS:
        patch, stride = setting
        height, width = crops.shape[1:3]
        cells = len(E.positions(height, patch, stride)) * len(E.positions(width, patch, stride))
        check = E.deletion_check(predictor.classify, crops, maps[setting], targets, fraction=args.fraction)
        best, median = min(seconds[setting]), statistics.median(seconds[setting])
        print(f"| {patch} / {stride} | {cells} | {best:.1f} | {median:.1f} | {check['original']:.3f} | "
              f"{check['salient']:.3f} (−{check['salient_drop']:.3f}) | {check['random']:.3f} "
              f"(−{check['random_drop']:.3f}) | {check['salient_wins']:.0%} of faces |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

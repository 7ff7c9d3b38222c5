"""Recall, precision and speed of emolib's face detectors on labelled photos (see bench/_photos.py).

    .venv/bin/python bench/detectors.py [--seed 0] [--composites 12] [--repeats 3]

A detection counts as a hit when it overlaps a true face with IoU ≥ 0.4 (greedy one-to-one matching,
best IoU first). Time is the median over photos of each photo's median over ``--repeats`` runs, for
``detector.detect(rgb)`` on decoded images (decoding is the same for all detectors). Prints a markdown
table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _photos  # noqa: E402

from emolib import detect  # noqa: E402
from emolib.detect import box_iou  # noqa: E402

IOU_THRESHOLD = 0.4
MIN_FACE = 40  # the faces a min_face=40 detector must find


def match(found, truth, threshold: float = IOU_THRESHOLD) -> int:
    """Number of one-to-one matches with IoU ≥ threshold (greedy, best pairs first)."""
    pairs = sorted(((box_iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)),
                   reverse=True)
    used_f, used_t, hits = set(), set(), 0
    for score, i, j in pairs:
        if score < threshold:
            break
        if i in used_f or j in used_t:
            continue
        used_f.add(i)
        used_t.add(j)
        hits += 1
    return hits


def configurations():
    """(label, detector) pairs to compare."""
    yunet = _photos.YUNET
    return [
        ("haar, original (1.1, 5)", detect.get_detector("haar")),
        ("haar as fer (1.1, 5, minSize 50)", detect.get_detector("haar", min_size=50)),
        ("haar, min_face 40", detect.get_detector("haar", min_face=40)),
        ("yunet full resolution", detect.get_detector("yunet", model_path=yunet, max_side=None)),
        ("yunet ≤640 px (detector default)", detect.get_detector("yunet", model_path=yunet)),
        ("yunet, min_face 40",
         detect.get_detector("yunet", model_path=yunet, min_face=40)),
        ("yunet ≤320 px", detect.get_detector("yunet", model_path=yunet, max_side=320)),
    ]


def run(images, repeats: int = 3) -> list[dict]:
    rows = []
    for label, detector in configurations():
        tp = fp = fn = big_tp = big = 0
        times = []
        detector.detect(images[0].rgb)  # warm-up
        for image in images:
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                faces = detector.detect(image.rgb)
                runs.append(time.perf_counter() - start)
            times.append(statistics.median(runs))
            hits = match([f.box for f in faces], image.boxes)
            large = [box for box in image.boxes if box[2] >= MIN_FACE]
            big_tp += match([f.box for f in faces], large)
            big += len(large)
            tp += hits
            fp += len(faces) - hits
            fn += len(image.boxes) - hits
        rows.append({
            "detector": label,
            "recall": tp / max(1, tp + fn),
            "recall_large": big_tp / max(1, big),
            "precision": tp / max(1, tp + fp),
            "tp": tp, "fp": fp, "fn": fn,
            "ms": 1000 * statistics.median(times),
            "ms_mean": 1000 * statistics.fmean(times),
        })
    return rows


def table(rows) -> str:
    lines = [f"| detector | recall | recall, faces ≥ {MIN_FACE} px | precision | TP | FP | FN | "
             "ms/photo (median) | ms/photo (mean) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['detector']} | {r['recall']:.3f} | {r['recall_large']:.3f} | "
                     f"{r['precision']:.3f} | {r['tp']} | {r['fp']} | {r['fn']} | {r['ms']:.1f} | "
                     f"{r['ms_mean']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--composites", type=int, default=12)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"IoU ≥ {IOU_THRESHOLD}; seed {args.seed}; {platform.machine()}, {os.cpu_count()} CPU(s), "
          f"load average {os.getloadavg()[0]:.1f} at start; times are per detect() call on decoded "
          f"RGB arrays\n")
    for hard, title in ((False, "Easy: upright faces of 40–200 px"),
                        (True, "Hard: faces of 24–200 px, rotated ±30°, relit, noisy")):
        images = _photos.labelled_set(args.seed, args.composites, args.negatives, hard=hard)
        faces = sum(len(i.boxes) for i in images)
        print(f"**{title}** — {len(images)} photos: the 2 portraits, {args.composites} composites of "
              f"960×720, {args.negatives} without faces; {faces} true faces\n")
        print(table(run(images, args.repeats)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

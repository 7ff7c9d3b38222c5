"""Weight averaging of a run's last epochs (SWA, Izmailov et al., 2018) into a new run.

Averaging the weights of the epochs at the end of a cosine cycle lands nearer the centre of the
flat region they circle than any one of them. Batch-norm statistics of averaged weights are not the
average of the statistics, so they are re-estimated on the training faces.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emolib import data as D
from emolib import models as M
from emolib import train as T


def average_weights(model, weight_files) -> None:
    """Set ``model``'s weights to the element-wise mean of ``weight_files`` (``save_weights`` files of
    the same architecture)."""
    total = None
    for path in weight_files:
        model.load_weights(path)
        weights = model.get_weights()
        total = weights if total is None else [sum_ + w for sum_, w in zip(total, weights)]
    model.set_weights([sum_ / len(weight_files) for sum_ in total])


def recompute_batch_norm(model, images: np.ndarray, batch_size: int = 128, seed: int = 0) -> None:
    """Re-estimate every BatchNormalization layer's moving mean and variance: their average over one
    pass of ``images`` in training mode (augmentation and dropout on, as in training)."""
    import keras

    layers = [layer for layer in M.leaf_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape))
    keras.utils.set_random_seed(seed)
    order = np.random.default_rng(seed).permutation(len(images))
    try:
        for step, start in enumerate(range(0, len(order), batch_size)):
            for layer in layers:  # new = m·old + (1 − m)·batch with m = step / (step + 1): a running mean
                layer.momentum = step / (step + 1)
            model(images[order[start:start + batch_size]], training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def average_run(run_dir: str | os.PathLike, last: int, train_split: D.Split, val_split: D.Split,
                test_split: D.Split | None = None, output: str | os.PathLike | None = None) -> Path:
    """Average the weights of the last ``last`` epochs that ``run_dir`` kept (``keep_snapshots``),
    re-estimate batch norm on ``train_split`` and write the result as a new run ``<name>-swa<last>``.

    ``train_split`` and ``val_split`` are the run's own; the new run's metrics.json has the source's
    val and test metrics as ``source_metrics``, so the val split decides which to keep. The source
    run is not touched.
    """
    run_dir = Path(run_dir)
    card = T.finished_card(run_dir)
    if "logit_adjustment" in card:
        raise ValueError(f"{run_dir} is logit-adjusted: average the run it came from, then calibrate that")
    T.check_own_val_split(run_dir, val_split)
    snapshots = T.snapshot_files(run_dir)
    if last < 2 or len(snapshots) < last:
        raise ValueError(f"{run_dir.name} kept {len(snapshots)} epoch snapshots; averaging needs at least 2 "
                         f"and --last ({last}) of them: train with --keep-snapshots")
    chosen = snapshots[-last:]
    model = M.load_model(run_dir).model
    average_weights(model, chosen)
    recompute_batch_norm(model, train_split.images)
    record = {"epochs": [int(path.name.split("-")[1].split(".")[0]) for path in chosen],
              "batch_norm": "re-estimated on train", "source_run": run_dir.name}
    return T.write_derived_run(run_dir, f"swa{last}", model, val_split, test_split, output,
                               weight_average=record)


def run_cli(args) -> int:
    """``emolib average RUN_DIR --last N``: reload the run's data, average its last N epochs, new run."""
    train_split, val_split, test_split = T.load_run_data(args.run_dir)
    target = average_run(args.run_dir, args.last, train_split, val_split, test_split, args.output)
    print(f"averaged the last {args.last} epochs, written to {target}\n{T.derived_run_summary(target)}")
    return 0

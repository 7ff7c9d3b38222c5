"""Weight averaging into a new run: of one run's last epochs (SWA, Izmailov et al., 2018), or of the
models of several runs fine-tuned from one starting model (a uniform model soup, Wortsman et al., 2022).

Averaging the weights of the epochs at the end of a cosine cycle lands nearer the centre of the
flat region they circle than any one of them; runs fine-tuned from one model (``--init-from``) stay
in its basin, so their mean is a model too (runs from other random initialisations are not: ensemble
those). Batch-norm statistics of averaged weights are not the average of the statistics, so they
are re-estimated on the training faces.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from emolib import data as D
from emolib import models as M
from emolib import runs


def mean_weights(weight_lists) -> list[np.ndarray]:
    """The element-wise mean of several ``get_weights()`` lists of one architecture, summed one list
    at a time (``weight_lists`` may be a generator, so only one model's weights need be loaded)."""
    total, count = None, 0
    for weights in weight_lists:
        if total is not None and [w.shape for w in weights] != [t.shape for t in total]:
            raise ValueError("the weights to average come from different architectures: only models of one "
                             "backbone, input size and number of classes can be averaged")
        total = [np.array(w) for w in weights] if total is None else [t + w for t, w in zip(total, weights)]
        count += 1
    return [t / count for t in total]


def average_weights(model, weight_files) -> None:
    """Set ``model``'s weights to the element-wise mean of ``weight_files`` (``save_weights`` files of
    the same architecture)."""
    def each_file():
        for path in weight_files:
            model.load_weights(path)
            yield model.get_weights()

    model.set_weights(mean_weights(each_file()))


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
    runs.combinable_cards([run_dir], val_split, "average")
    snapshots = runs.snapshot_files(run_dir)
    if last < 2 or len(snapshots) < last:
        raise ValueError(f"{run_dir.name} kept {len(snapshots)} epoch snapshots; averaging needs at least 2 "
                         f"and --last ({last}) of them: train with --keep-snapshots")
    chosen = snapshots[-last:]
    model = M.load_model(run_dir).model
    average_weights(model, chosen)
    recompute_batch_norm(model, train_split.images)
    record = {"epochs": [int(path.name.split("-")[1].split(".")[0]) for path in chosen],
              "batch_norm": "re-estimated on train", "source_run": run_dir.name}
    return runs.write_derived_run(run_dir, f"swa{last}", model, val_split, test_split, output,
                               weight_average=record)


def soup_runs(run_dirs, train_split: D.Split, val_split: D.Split, test_split: D.Split | None = None,
              output: str | os.PathLike | None = None) -> Path:
    """Average the weights of the finished runs ``run_dirs`` (fine-tuned from one starting model),
    re-estimate batch norm on ``train_split`` and write the result as a new run ``<first name>-soup<k>``.

    The splits are the runs' own: each run is checked to have been trained with ``val_split``. The
    new run's metrics.json has the first run's val and test metrics as ``source_metrics``; its card
    lists the runs. The runs are not touched.
    """
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    if len(run_dirs) < 2:
        raise ValueError("a soup averages at least 2 runs (to average one run's epochs: --last N)")
    cards = runs.combinable_cards(run_dirs, val_split, "average")
    model = M.load_model(run_dirs[0]).model
    others = (M.load_model(run_dir).model.get_weights() for run_dir in run_dirs[1:])
    model.set_weights(mean_weights(itertools.chain([model.get_weights()], others)))
    recompute_batch_norm(model, train_split.images)
    record = {"runs": [run_dir.name for run_dir in run_dirs], "batch_norm": "re-estimated on train",
              "run_val_accuracy": [card["metrics"]["val_accuracy"] for card in cards]}
    return runs.write_derived_run(run_dirs[0], f"soup{len(run_dirs)}", model, val_split, test_split, output,
                               weight_average=record)

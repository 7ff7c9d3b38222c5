"""Notebook helpers: what every notebook does first (:func:`setup`: the project directory, TensorFlow
quiet), a split's class counts and samples, augmented copies, training a configuration and showing a run.

Light to import (the first cell imports it before anything imports Keras): each helper imports what it
draws with. A notebook's data come from :func:`emolib.runs.splits.load_data`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from emolib import paths


def setup() -> Path:
    """Make the project directory the current directory and silence TensorFlow's start-up log.

    Relative paths are then taken from the project directory, as on the command line run from the
    repository root (one rule, see :mod:`emolib.paths`). TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` once,
    when it is imported, so call this in the first cell, before anything imports Keras. Returns the
    project directory.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its C++ INFO and WARNING lines: a pink block
    project = paths.project_dir()
    os.chdir(project)
    return project


def train_and_show(config, train_split, val_split, test_split=None, *, data_info: dict | None = None,
                   name: str | None = None, output: str | os.PathLike | None = None,
                   run_dir: str | os.PathLike | None = None, also_test_on: str | None = None):
    """Train ``config`` into a run directory and show the run; returns the :class:`emolib.train.RunResult`.

    :func:`emolib.train.train` fits with early stopping, keeps the best epoch by validation accuracy,
    evaluates on ``test_split`` and writes the run directory (``output``: default
    :func:`emolib.paths.runs_dir`; ``run_dir``: a fixed one, resumed if unfinished, as ``emolib
    experiments run`` sets it). The run is then shown: headline scores, learning curves, confusion
    matrix and per-class report. ``also_test_on`` names another dataset (its shared copy) whose test
    split the run is also scored on, on the classes both share (:func:`emolib.runs.evaluate_on`).
    """
    from emolib import experiments as X
    from emolib import runs
    from emolib import train as T

    result = T.train(config, train_split, val_split, test_split, output=X.runs_dir(output),
                     name=name or config.backbone, run_dir=run_dir, data_info=data_info, verbose=2)
    if also_test_on:
        runs.evaluate_on(result.run_dir, also_test_on, X.data_root(also_test_on))
    show_run(result.run_dir)
    return result


def split_counts(**splits):
    """Images per class (rows) for each named split (columns), with a total row: ``split_counts(train=s)``."""
    import pandas as pd

    from emolib import data as D

    table = pd.DataFrame({name: D.class_counts(s.labels, s.classes) for name, s in splits.items()
                          if s is not None})
    table.loc["total"] = table.sum()
    return table


def plot_samples(split, per_class: int = 6, seed: int = 0, title: str = "Samples per class"):
    """A grid of random faces: one row per class, ``per_class`` columns."""
    import matplotlib.pyplot as plt
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = len(split.classes)
    fig, axes = plt.subplots(rows, per_class, figsize=(1.3 * per_class, 1.3 * rows), squeeze=False)
    for r, name in enumerate(split.classes):
        index = np.flatnonzero(split.labels == r)
        chosen = rng.choice(index, size=min(per_class, len(index)), replace=False) if len(index) else []
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(chosen):
                image = split.images[chosen[c]]
                ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_augmented(images, augment=True, copies: int = 3, seed: int = 0):
    """The first images (top row) and ``copies`` rows of their randomly augmented versions."""
    import keras
    import matplotlib.pyplot as plt
    import numpy as np

    from emolib import models as M

    images = np.asarray(images, dtype="float32")
    augmentation = M.augment_layer(augment, seed)
    rows = [images] + [keras.ops.convert_to_numpy(augmentation(images, training=True)) if augmentation
                       else images for _ in range(copies)]
    fig, axes = plt.subplots(len(rows), len(images), figsize=(1.3 * len(images), 1.3 * len(rows)),
                             squeeze=False)
    for r, batch in enumerate(rows):
        for c, image in enumerate(batch):
            ax = axes[r][c]
            ax.imshow(np.clip(image, 0, 255).astype("uint8").squeeze(), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel("original" if r == 0 else f"augmented {r}")
    fig.tight_layout()
    return fig


def show_run(run_dir: str | os.PathLike) -> dict:
    """Display a run inline (headline metrics, valence and arousal scores where the model has that head,
    learning curves, confusion matrix, reliability diagram, report); return metrics."""
    from IPython.display import Image, Markdown, display

    from emolib.experiments.compare import METRICS

    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    split = metrics["evaluated_split"]
    scores = ", ".join(f"{name.replace('_', ' ')} **{metrics[split][name]:.3f}**" for name in METRICS)
    display(Markdown(f"`{run_dir.name}` — {split} split ({metrics[split]['samples']} images): {scores}; "
                     f"best epoch {metrics['best_epoch'] + 1} of {metrics['epochs_run']}."))
    affect = [f"{name} CCC **{metrics[split][name]['ccc']:.3f}**, RMSE {metrics[split][name]['rmse']:.3f}, "
              f"Pearson {metrics[split][name]['pearson']:.3f} ({metrics[split][name]['samples']} faces)"
              for name in ("valence", "arousal") if (metrics[split].get(name) or {}).get("ccc") is not None
              and metrics[split][name]["pearson"] is not None]
    if affect:  # a model with a valence-arousal head
        display(Markdown("; ".join(affect) + "."))
    for figure in ("curves.png", "confusion.png", "reliability.png"):
        if (run_dir / figure).is_file():
            display(Image(filename=str(run_dir / figure)))
    for where, other in metrics.get("other_datasets", {}).items():
        display(Markdown(f"also on `{where}` ({other['samples']} images of the shared classes): " +
                         ", ".join(f"{name.replace('_', ' ')} **{other[name]:.3f}**" for name in METRICS)))
    if (run_dir / "report.txt").is_file():
        print((run_dir / "report.txt").read_text())
    return metrics


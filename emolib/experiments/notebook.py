"""Notebook helpers: load a dataset subset, show samples and augmentations, display a finished run."""

from __future__ import annotations

import json
import os
from pathlib import Path

from emolib.experiments.compare import METRICS
from emolib.experiments.paths import data_root


def load_data(dataset: str = "fer2013", data: str | os.PathLike | None = None, input_size: int = 48,
              channels: int = 1, max_per_class: int | None = None, fraction: float | None = None,
              seed: int = 0, val_fraction: float | None = None, test_split: str | None = "test", **options):
    """Train / validation / test splits for a notebook, as :func:`emolib.train.load_data` returns them.

    Parameters
    ----------
    dataset, data : dataset format and folder (``data=None``: the shared copy, see :func:`data_root`).
    input_size, channels : decoded image side and channels.
    max_per_class : int, optional
        Keep at most this many training images per class (a quarter of it for validation and test).
    fraction : float, optional
        Then keep this fraction of each class of every split: a small subset that keeps the class
        imbalance (``max_per_class`` flattens it).
    val_fraction : float, optional
        Share of train carved out for validation (default :data:`emolib.data.VAL_FRACTION`).
    """
    from emolib import data as D
    from emolib import train as T

    root = data_root(dataset, data)
    val_fraction = D.VAL_FRACTION if val_fraction is None else val_fraction
    train, val, test, info = T.load_data(dataset, root, input_size, channels, val_fraction, max_per_class,
                                         seed, test_split, **options)
    if fraction:
        train, val = (D.limit_per_class(s, fraction=fraction, seed=seed) for s in (train, val))
        test = None if test is None else D.limit_per_class(test, fraction=fraction, seed=seed)
        info["fraction"] = fraction
    return train, val, test, info


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


"""Batches of a split for Keras' ``fit``: a ``keras.utils.PyDataset`` that reads rows by index.

The images stay where they are (usually the memory-mapped decode cache); each batch is read, made
float32 and handed to Keras, so memory holds a few batches, never the split. Training batches follow
a seeded permutation of the epoch's number (:class:`EpochFollower` tells it to them), so a resumed
run sees the order it would have seen.
"""

from __future__ import annotations

import keras
import numpy as np


class FaceBatches(keras.utils.PyDataset):
    """``(images, targets[, sample_weights])`` batches of ``images`` (n, h, w, c) uint8.

    Parameters
    ----------
    images : array or emolib.data.Rows
        Anything that gives rows by integer index: a memory map, a :class:`emolib.data.Rows` view.
    targets : np.ndarray or tuple of np.ndarray
        (n,) class indices or (n, k) rows of probabilities; a tuple gives one target per model output
        (the first one the classes, e.g. ``(labels, valence_arousal)``).
    batch_size : int
    seed : int, optional
        Shuffle with ``np.random.default_rng([seed, epoch])`` each epoch; ``None`` keeps the order.
    class_weight : dict, optional
        ``{class index: weight}`` given as per-face weights, as Keras' ``fit(class_weight=...)`` does
        (class of a row of probabilities: its largest entry).
    multiple : int
        Every batch has a multiple of this many rows (the device count): a short last batch is padded
        with copies of its first row that weigh 0.
    """

    def __init__(self, images, targets: np.ndarray, batch_size: int, seed: int | None = None,
                 class_weight: dict | None = None, multiple: int = 1):
        super().__init__()
        self.outputs = tuple(np.asarray(t) for t in targets) if isinstance(targets, tuple) else None
        self.targets = self.outputs[0] if self.outputs else np.asarray(targets)
        if any(len(images) != len(t) for t in self.outputs or (self.targets,)):
            raise ValueError(f"{len(images)} images but {len(self.targets)} targets")
        self.images, self.batch_size = images, batch_size
        self.seed, self.multiple = seed, multiple
        self.weights = None if class_weight is None else _class_weights_of(self.targets, class_weight)
        if self.weights is None and len(self.targets) % batch_size % multiple:  # one structure per batch
            self.weights = np.ones(len(self.targets), np.float32)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Give the batches of ``epoch`` from now on."""
        self.epoch, self.rows = epoch, self.order(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The row order of ``epoch``."""
        if self.seed is None:
            return np.arange(len(self.targets))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.targets))

    def __len__(self) -> int:
        return -(-len(self.targets) // self.batch_size)

    def __getitem__(self, index: int):
        rows = self.rows[index * self.batch_size:(index + 1) * self.batch_size]
        weights = None if self.weights is None else self.weights[rows]
        pad = -len(rows) % self.multiple
        if pad:
            weights = np.concatenate([weights, np.zeros(pad, np.float32)])
            rows = np.concatenate([rows, np.repeat(rows[:1], pad)])
        targets = tuple(t[rows] for t in self.outputs) if self.outputs else self.targets[rows]
        batch = (np.asarray(self.images[rows], dtype=np.float32), targets)
        return batch if weights is None else (*batch, weights)



class EpochFollower(keras.callbacks.Callback):
    """Sets :class:`FaceBatches` to each epoch as ``fit`` begins it (Keras numbers epochs; a dataset's
    own ``on_epoch_end`` calls also come after its first look at the data, so they cannot count)."""

    def __init__(self, batches: FaceBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


class ExpressionLogs(keras.callbacks.Callback):
    """A two-output model's epoch logs under the names of an expression model's: Keras calls its
    accuracy ``predictions_accuracy``; early stopping, the checkpoint and the history read
    ``accuracy`` and ``val_accuracy`` (the losses of each head stay, as ``predictions_loss`` and
    ``valence_arousal_loss``). Put it before the callbacks that read them."""

    def on_epoch_end(self, epoch, logs=None):
        for prefix in ("", "val_"):
            key = f"{prefix}predictions_accuracy"
            if logs is not None and key in logs:
                logs[f"{prefix}accuracy"] = logs.pop(key)


def _class_weights_of(targets: np.ndarray, class_weight: dict) -> np.ndarray:
    classes = np.argmax(targets, axis=-1) if targets.ndim > 1 else targets.astype(np.int64)
    return np.array([class_weight.get(int(c), 1.0) for c in classes], dtype=np.float32)

"""A run's data: the train / validation / test splits, and the record of them that params.json keeps."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from emolib import data as D
from emolib.runs import finished_card, run_params

#: Skipped files a run's data record (params.json, the model card's ``training_data``) lists by name.
SKIPPED_LISTED = 10


def load_data(dataset: str, root, input_size: int, channels: int, val_fraction: float = D.VAL_FRACTION,
              max_per_class: int | None = None, seed: int = 0, test_split: str | None = "test",
              val_split: str | None = None, cache: bool | str | os.PathLike = True,
              fraction: float | None = None, **options) -> tuple[D.Split, D.Split, D.Split | None, dict]:
    """Train / validation / test splits and their description.

    The validation split is the dataset's own ``val_split`` (e.g. FER+'s ``valid``) where given, else
    carved from train (stratified, ``val_fraction``, ``seed``). The test split is only evaluated.
    ``max_per_class`` keeps at most that many training images per class (a quarter of it for validation
    and test); ``fraction`` then keeps that share of each class of every split, a small subset that keeps
    the class imbalance (``max_per_class`` flattens it). ``cache`` is :func:`emolib.data.load_split`'s;
    ``options`` are the format's (``classes``, ``margin``, ``square``, ``align``, ``boxes``), which the
    description records (as ``options``) when given. A notebook passes the shared copy of a dataset as
    ``root`` with :func:`emolib.experiments.data_root`.
    """
    full = D.load_split(dataset, root, "train", input_size, channels, cache, progress=True, **options)
    if val_split:
        train_split = full
        val = D.load_split(dataset, root, val_split, input_size, channels, cache, progress=True, **options)
    else:
        train_split, val = D.train_val_split(full, val_fraction, seed)
    train_split = D.limit_per_class(train_split, max_per_class, seed=seed)
    val = D.limit_per_class(val, max_per_class and max(1, max_per_class // 4), seed=seed)
    test = None
    if test_split:
        test = D.load_split(dataset, root, test_split, input_size, channels, cache, progress=True,
                            **options)
        test = D.limit_per_class(test, max_per_class and max(1, max_per_class // 4), seed=seed)
    loaded = [full, *([val] if val_split else []), *([test] if test is not None else [])]
    skipped = {s: r for split in loaded for s, r in zip(split.skipped, split.skip_reasons)}
    info = {"dataset": dataset, "root": str(root), "val_fraction": None if val_split else val_fraction,
            "max_per_class": max_per_class, "seed": seed, "test_split": test_split,
            "skipped": len(skipped), "skipped_first": dict(list(skipped.items())[:SKIPPED_LISTED])}
    if skipped:
        source, reason = next(iter(skipped.items()))
        print(f"{dataset}: skipped {len(skipped)} unreadable file(s), listed with the reason in the run's "
              f"card (training_data.skipped_first); the first: {source}: {reason}", file=sys.stderr)
    if val_split:
        info["val_split"] = val_split
    if options:
        info["options"] = {key: os.fspath(value) if isinstance(value, os.PathLike) else value
                           for key, value in options.items()}
    if fraction:
        train_split, val = (D.limit_per_class(s, fraction=fraction, seed=seed) for s in (train_split, val))
        test = None if test is None else D.limit_per_class(test, fraction=fraction, seed=seed)
        info["fraction"] = fraction
    return train_split, val, test, info


def load_recorded_data(record: dict, input_size: int, channels: int):
    """:func:`load_data` of a run's ``data`` record (params.json): the same splits, the same val carve."""
    return load_data(record["dataset"], record["root"], input_size, channels, record["val_fraction"],
                     record["max_per_class"], record["seed"], record.get("test_split", "test"),
                     record.get("val_split"), fraction=record.get("fraction"), **record.get("options", {}))


def load_run_data(run_dir: str | Path):
    """A finished run's train / val / test splits, reloaded as it recorded them, at its model's size."""
    card = finished_card(run_dir)
    record = run_params(run_dir)["data"]
    return load_recorded_data(record, card["input_size"][0], card["channels"])[:3]

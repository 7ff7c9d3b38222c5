"""What every emolib notebook does first: work from the project directory, with TensorFlow quiet."""

from __future__ import annotations

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
    X.show_run(result.run_dir)
    return result

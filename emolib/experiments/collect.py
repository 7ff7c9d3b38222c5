"""Copy the small outputs of finished runs (metrics, params, history, card, plots, executed notebook)
without their weights and checkpoints, so that a grid's results can be committed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from emolib.experiments.compare import find_runs
from emolib.experiments.grid import NOTEBOOK_FILE, RECORD_FILE

#: what a run directory holds that is not committed: its weights and its training checkpoint
LEFT_OUT = ("checkpoint", "*.keras", "*.h5", "*.onnx")


def collect_outputs(source: str | os.PathLike, destination: str | os.PathLike) -> list[Path]:
    """Copy every finished run at or below ``source`` to the same place below ``destination``, without
    :data:`LEFT_OUT`; the grid's own records (``experiment.json``, the executed notebook) of the folders
    holding them come along. Returns the copied run directories."""
    source, destination = Path(source).expanduser().resolve(), Path(destination)
    if not source.is_dir():
        raise FileNotFoundError(f"no grid output folder at {source}")
    copied = []
    for run_dir in find_runs([source]):
        target = destination / run_dir.relative_to(source)
        shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns(*LEFT_OUT), dirs_exist_ok=True)
        for folder in list(run_dir.relative_to(source).parents)[:-1]:  # a grid run holding nested runs
            for name in (RECORD_FILE, NOTEBOOK_FILE):
                if (source / folder / name).is_file():
                    (destination / folder).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source / folder / name, destination / folder / name)
        copied.append(target)
    return copied

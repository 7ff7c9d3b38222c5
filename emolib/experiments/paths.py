"""Where the runner and the notebooks look: the repository, the shared data, the run folders.

Notebooks run with their own folder as the working directory, so relative paths are taken from the
repository root instead.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded; a relative path is taken from the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def shared_dir() -> Path:
    """The shared data folder: ``$EMOLIB_SHARED``, default ``../shared`` next to the repository."""
    return resolve_path(os.environ.get("EMOLIB_SHARED") or REPO_ROOT.parent / "shared")


def data_root(dataset: str, data: str | os.PathLike | None = None) -> Path:
    """Dataset folder: ``data`` if given (relative: from the repo root), else ``<shared>/data/<dataset>``."""
    return resolve_path(data) if data else shared_dir() / "data" / dataset


def runs_dir(output: str | os.PathLike | None = None) -> Path:
    """Where new run directories go: ``output``, else ``$EMOLIB_RUNS``, else ``<repo>/results/runs``."""
    return resolve_path(output or os.environ.get("EMOLIB_RUNS") or "results/runs")


"""Where the runner and the notebooks look: the project directory, the shared data, the run folders.

The locations themselves are :mod:`emolib.paths`'; relative paths here are taken from the project
directory, which is a notebook's current directory once :func:`emolib.notebook.setup` ran (one rule:
see emolib.paths), even when a notebook is started from its own folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from emolib import paths

REPO_ROOT = paths.project_dir()


def resolve_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded; a relative path is taken from the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def shared_dir() -> Path:
    """The shared data folder (:func:`emolib.paths.shared_dir`)."""
    return paths.shared_dir()


def data_root(dataset: str, data: str | os.PathLike | None = None) -> Path:
    """Dataset folder: ``data`` if given (relative: from the repo root), else ``<shared>/data/<dataset>``."""
    return resolve_path(data) if data else shared_dir() / "data" / dataset


def runs_dir(output: str | os.PathLike | None = None) -> Path:
    """Where new run directories go: ``output``, else :func:`emolib.paths.runs_dir`."""
    return resolve_path(output) if output else paths.runs_dir()


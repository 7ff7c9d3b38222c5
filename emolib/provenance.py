"""Which code produced a result: the git commit of the project, recorded in every run
(:func:`code_version`) and in every model card (:func:`git_commit`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from emolib import paths


def _git(directory: Path, *args: str) -> str:
    """The stripped output of ``git ARGS`` in ``directory`` (raises ``OSError`` or
    ``subprocess.SubprocessError`` when git fails or is missing)."""
    return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                          check=True, timeout=10).stdout.strip()


def code_version() -> str | None:
    """The source checkout's git commit, ``+dirty`` when tracked files differ from it; None for an
    installed package or without git. Asked at each call (once per run): a long grid whose checkout
    is updated between runs records each run's own commit."""
    if paths.REPO_DIR is None:
        return None
    try:
        commit = _git(paths.REPO_DIR, "rev-parse", "--short=12", "HEAD")
        dirty = bool(_git(paths.REPO_DIR, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def git_commit(directory: Path | None = paths.REPO_DIR) -> str | None:
    """The current git commit of ``directory`` (default: emolib's source checkout), or None outside one."""
    if directory is None:
        return None
    try:
        return _git(directory, "rev-parse", "HEAD") or None
    except (OSError, subprocess.SubprocessError):
        return None

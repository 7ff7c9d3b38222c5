"""Which code produced a result: the git commit of the project, recorded in every run."""

from __future__ import annotations

import subprocess

from emolib import paths


def code_version() -> str | None:
    """The source checkout's git commit, ``+dirty`` when tracked files differ from it; None for an
    installed package or without git. Asked at each call (once per run): a long grid whose checkout
    is updated between runs records each run's own commit."""
    if paths.REPO_DIR is None:
        return None

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=paths.REPO_DIR, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")

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

"""Where emolib finds and puts things: the repository, shared data, cache, runs and shipped models.

The one place for these locations and their environment variables (Keras-free and cheap to import,
like scikit-learn's ``get_data_home``). Environment variables are read at each call, so a test or a
notebook may set them at any time.

=================  ===================================================================================
``EMOLIB_SHARED``  shared data (``data/fer2013``…, ``models/`` of detectors); default ``../shared``
                   beside the project directory
``EMOLIB_CACHE``   decode-once image cache and downloads; default ``~/.cache/emolib``
``EMOLIB_RUNS``    where new run directories go; default ``<project>/results/runs``
``EMOLIB_MODEL``   the model the dashboard starts with; default the shipped default model
``EMOLIB_MODEL_DIR`` a folder of model files looked in first (e.g. the YuNet detector's); default none
=================  ===================================================================================

Relative paths follow one rule, on the command line and in notebooks alike: **a relative path is taken
from the current directory**. emolib's notebooks first make the project directory their current
directory (:func:`emolib.notebook.setup`), so a path in a notebook means what it means on the command
line run from the repository root.

Shipped models (``emolib/shipped_models/<name>/``) are package data, read through
:mod:`importlib.resources`: found wherever the package is, whatever installed it (a source checkout,
an editable install, a venv, ``pip install --user`` or ``--target``).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

SHARED_ENV = "EMOLIB_SHARED"
CACHE_ENV = "EMOLIB_CACHE"
RUNS_ENV = "EMOLIB_RUNS"
MODEL_ENV = "EMOLIB_MODEL"
MODEL_DIR_ENV = "EMOLIB_MODEL_DIR"

PACKAGE_DIR = Path(__file__).resolve().parent


def _source_checkout() -> Path | None:
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None


#: The source checkout emolib is imported from (editable install, PYTHONPATH); None for a wheel.
REPO_DIR: Path | None = _source_checkout()
#: The shipped models (package data, pyproject's ``[tool.setuptools.package-data]``), in the package
#: emolib is imported from.
SHIPPED_MODELS_DIR = Path(str(resources.files("emolib") / "shipped_models"))
#: The model used when none is given (a directory holding model.keras and model.json): the 8-class
#: FER+ model, better than emolib-fer2013 on the 7 classes both know (see its README.md).
DEFAULT_MODEL_DIR = SHIPPED_MODELS_DIR / "emolib-ferplus"


def project_dir() -> Path:
    """The project directory: the source checkout, or for an installed package the current directory."""
    return REPO_DIR or Path.cwd()


def shared_dir() -> Path:
    """The shared data folder: ``$EMOLIB_SHARED``, default ``../shared`` beside the project directory."""
    return Path(os.environ.get(SHARED_ENV) or project_dir().parent / "shared").expanduser().resolve()


def cache_dir() -> Path:
    """emolib's cache (decoded images, downloads): ``$EMOLIB_CACHE`` or ``~/.cache/emolib``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "emolib").expanduser()


def model_files_dir() -> Path | None:
    """A folder of model files to look in first (the YuNet detector's): ``$EMOLIB_MODEL_DIR``, or None."""
    value = os.environ.get(MODEL_DIR_ENV)
    return Path(value).expanduser() if value else None


def runs_dir() -> Path:
    """Where new run directories go: ``$EMOLIB_RUNS``, default ``<project>/results/runs``."""
    return Path(os.environ.get(RUNS_ENV) or project_dir() / "results" / "runs").expanduser()

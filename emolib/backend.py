"""Which Keras backend runs: the one the environment was set up for, never ``~/.keras/keras.json``.

emolib keeps one backend per virtual environment (``make setup BACKEND=jax`` builds ``.venv-jax``).
The choice is a one-word file in the environment itself, ``sys.prefix/emolib-backend``, written by
``emolib backend NAME`` (``make setup`` runs it). Importing :mod:`emolib` calls :func:`apply`, which
sets ``KERAS_BACKEND`` from that file before Keras is imported.

Why a file in ``sys.prefix`` read by emolib: every ``bin/python`` call of the venv finds it, activated
or not (activate scripts only reach shells); it needs no variable set beforehand (``KERAS_HOME`` would);
and it runs nothing at every interpreter start of the venv (a ``.pth`` hook would, for pip and
jupyter too). What it sets is the environment variable, so it also reaches every subprocess (papermill
kernels, uvicorn, Ray workers). A script that imports Keras before emolib gets a warning naming the fix;
notebooks are covered by the venv's kernel spec, which ``make setup`` installs with ``KERAS_BACKEND``.

The rule, first match wins: ``KERAS_BACKEND`` if set; else the environment's file; else the first
installed of tensorflow, jax, torch. With none of them installed, the CLI says how to install one.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

#: The file in ``sys.prefix`` naming the environment's backend
BACKEND_FILE = "emolib-backend"
#: Keras backend name → the library that carries it, in the order an unconfigured environment tries them
BACKEND_LIBRARIES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
#: Keras backend name → the ``make setup`` argument that builds an environment for it
SETUP_COMMANDS = {name: f"make setup BACKEND={name}" for name in BACKEND_LIBRARIES}


def installed_backends() -> list[str]:
    """The Keras backends whose library is importable here, in :data:`BACKEND_LIBRARIES` order."""
    return [name for name, module in BACKEND_LIBRARIES.items() if importlib.util.find_spec(module)]


def configured_backend(environ: Mapping[str, str] = os.environ, prefix: str | os.PathLike = sys.prefix,
                       installed: list[str] | None = None) -> tuple[str | None, str]:
    """The backend this process should run, and where that choice came from.

    Returns
    -------
    (name, source)
        ``name`` is None when nothing is configured and no backend library is installed.
    """
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"], "KERAS_BACKEND"
    path = Path(prefix) / BACKEND_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip(), str(path)
    found = installed_backends() if installed is None else installed
    if found:
        return found[0], f"first installed of {', '.join(BACKEND_LIBRARIES)}"
    return None, f"none configured in {path} and none of {', '.join(BACKEND_LIBRARIES)} installed"


#: (name, source) as :func:`apply` found them at emolib's import, for ``emolib doctor``
applied: tuple[str | None, str] = (None, "not applied: Keras was imported before emolib")


def apply() -> None:
    """Set ``KERAS_BACKEND`` for this process (and its subprocesses); warn if Keras, imported before
    emolib, already runs another backend."""
    global applied
    if "keras" in sys.modules:
        name, _ = configured_backend()
        running = sys.modules["keras"].backend.backend()
        if name and name != running:
            warnings.warn(f"Keras was imported before emolib and runs {running}, but this environment's "
                          f"backend is {name}: import emolib first, or set KERAS_BACKEND={name}",
                          stacklevel=3)
        return
    applied = configured_backend()
    if applied[0]:
        os.environ["KERAS_BACKEND"] = applied[0]


def missing_backend_message(name: str | None, source: str) -> str:
    """What to do when backend ``name`` (None: no backend at all) cannot be imported here."""
    if name is None:
        return (f"no Keras backend library here ({source}). Install one: "
                f"{' | '.join(SETUP_COMMANDS.values())}, or pip install -e '.[cpu]' (TensorFlow), "
                f"'.[jax]' or '.[torch]'")
    setup = SETUP_COMMANDS.get(name, f"pip install {name}")
    return (f"the Keras backend is {name} (from {source}) but {BACKEND_LIBRARIES.get(name, name)} is not "
            f"installed in {sys.prefix}: run `{setup}` and use that environment's python, "
            f"or set KERAS_BACKEND to one of the installed ({', '.join(installed_backends()) or 'none'})")


def write_backend_file(name: str, prefix: str | os.PathLike = sys.prefix) -> Path:
    """Record ``name`` as the backend of the environment at ``prefix``."""
    if name not in BACKEND_LIBRARIES:
        raise ValueError(f"backend must be one of {list(BACKEND_LIBRARIES)}, not {name!r}")
    path = Path(prefix) / BACKEND_FILE
    path.write_text(name + "\n", encoding="utf-8")
    return path

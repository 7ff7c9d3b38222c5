"""Which install this is: the light one or the full one (pyproject.toml says why there are two).

``pip install emolib`` (the light install) predicts and serves with ONNX Runtime; the workbook —
Keras models, training, evaluation, notebooks, the dashboard — needs the ``full`` extra and a Keras
backend. What the full install adds is read from emolib's installed metadata (its ``Requires-Dist``
lines marked ``extra == "full"``), so pyproject.toml stays the one list.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable

FULL_EXTRA = "full"
#: The command that turns a light install into the full one (with TensorFlow, the default backend).
FULL_INSTALL = f"pip install 'emolib[{FULL_EXTRA},cpu]'"
_FULL_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*).*;.*\bextra\s*==\s*['\"]" + FULL_EXTRA
                               + r"['\"]")


class FullInstallRequired(RuntimeError):
    """What was asked for needs the full install (see :data:`FULL_INSTALL`)."""


def missing_full_requirements(requirements: Iterable[str] | None = None) -> list[str]:
    """The distributions of the ``full`` extra that are not installed here, in their listed order.

    Parameters
    ----------
    requirements : iterable of str, optional
        emolib's ``Requires-Dist`` lines; default: those of the installed emolib (none when emolib
        runs from a checkout that was never installed, so nothing is known to be missing).
    """
    if requirements is None:
        try:
            requirements = importlib.metadata.requires("emolib") or []
        except importlib.metadata.PackageNotFoundError:
            return []
    missing = []
    for line in requirements:
        match = _FULL_REQUIREMENT.match(line)
        if not match:
            continue
        try:
            importlib.metadata.distribution(match.group(1))
        except importlib.metadata.PackageNotFoundError:
            missing.append(match.group(1))
    return missing


def require_full_install(what: str, requirements: Iterable[str] | None = None) -> None:
    """Raise :class:`FullInstallRequired` naming ``what`` when the full install is incomplete here.

    Parameters
    ----------
    what : str
        What needs it, as the message starts: "this command", "the Keras runtime" …
    requirements : iterable of str, optional
        As for :func:`missing_full_requirements`.
    """
    missing = missing_full_requirements(requirements)
    if missing:
        raise FullInstallRequired(f"{what} needs the full install: {FULL_INSTALL} (cpu: TensorFlow; "
                                  f"gpu, jax or torch for another Keras backend); missing here: "
                                  f"{describe(missing)}")


def describe(missing: list[str], shown: int = 4) -> str:
    """``missing`` for a message: the first ``shown`` names, then how many more."""
    more = len(missing) - shown
    return ", ".join(missing[:shown]) + (f" and {more} more" if more > 0 else "")

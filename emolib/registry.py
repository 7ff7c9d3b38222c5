"""One small registry type for every kind of plug-in: datasets, backbones, detectors."""

from __future__ import annotations

from collections.abc import Callable


class Registry(dict):
    """Name → plug-in. Every kind has one shape: ``register_<kind>(name, **details)`` (a decorator
    around ``register``), ``get_<kind>(name)`` (``lookup``: names the known entries on a miss) and
    ``list_<kind>s()`` (``names``).

    Parameters
    ----------
    kind : str
        What the entries are ("dataset", "backbone", "detector"), for error messages.
    """

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str, make_entry: Callable | None = None):
        """Decorator: store the decorated object (or ``make_entry(obj)``) under ``name``."""

        def decorator(obj):
            self[name] = make_entry(obj) if make_entry else obj
            return obj

        return decorator

    def names(self) -> list[str]:
        """The registered names, sorted (what ``list_datasets()`` and its kin return)."""
        return sorted(self)

    def lookup(self, name: str):
        """The entry called ``name``; a ValueError listing the registered names otherwise."""
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {sorted(self)}")
        return self[name]


def first_doc_line(obj) -> str:
    """The first line of ``obj``'s docstring (empty if none)."""
    lines = (obj.__doc__ or "").strip().splitlines()
    return lines[0] if lines else ""

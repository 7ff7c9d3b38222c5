"""``emolib backend [NAME]``: this environment's Keras backend and its source; with NAME, record it."""

from __future__ import annotations

import sys

from emolib import backend


def run(args) -> int:
    """Print the backend and where it comes from, or record ``args.name`` as the backend."""
    if args.name:
        path = backend.write_backend_file(args.name)
        print(f"Keras backend of {sys.prefix}: {args.name} (recorded in {path})")
        return 0
    name, source = backend.applied
    print(f"{name}  (from {source})")
    return 0

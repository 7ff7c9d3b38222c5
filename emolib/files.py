"""Atomic file writes: a reader never sees a half-written file that looks complete."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file keeps the suffix of ``path`` so that writers which look at the
    extension (Keras, matplotlib, numpy) behave as for the real name. On error it is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)  # keep compound endings such as .weights.h5
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.tmp-", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as keras refuse to overwrite; they create it themselves
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str | os.PathLike, data: bytes | str | Callable[[Path], None]) -> Path:
    """Write ``data`` (bytes, text, or a function that writes a given path) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        if callable(data):
            data(tmp)
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented UTF-8 JSON, atomically."""
    return write_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(value):
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def cut_torn_line(path: str | os.PathLike) -> int:
    """Truncate ``path`` just after its last newline: a line cut short by a kill in the middle of an
    append is dropped, every whole line kept. Reads from the end, a block at a time; returns the size
    kept (0 for a missing file)."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, "rb+") as file:
        size = file.seek(0, os.SEEK_END)
        keep = size
        while keep > 0:  # back to just after the last newline
            step = min(keep, 1 << 16)
            file.seek(keep - step)
            newline = file.read(step).rfind(b"\n")
            if newline >= 0:
                keep = keep - step + newline + 1
                break
            keep -= step
        if keep != size:
            file.truncate(keep)
    return keep


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

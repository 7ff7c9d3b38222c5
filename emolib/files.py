"""Atomic file writes: a reader never sees a half-written file that looks complete.

A temporary file is named ``.<stem>.tmp-<host>-<pid>-<random><suffix>``, beside its target: a writer
killed before its rename leaves it behind, and the next atomic write of the same target (on the same
host) removes the temporaries of writers that are no longer running (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import socket
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
    stem, suffix = _split_name(path)
    remove_stale_temporaries(path.parent, stem)
    fd, tmp = tempfile.mkstemp(prefix=f"{_temporary_prefix(stem)}{os.getpid()}-", suffix=suffix,
                               dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as keras refuse to overwrite; they create it themselves
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
        elif os.path.exists(tmp):
            os.unlink(tmp)


def _split_name(path: Path) -> tuple[str, str]:
    """``(stem, suffix)`` of ``path``'s name, the suffix compound (``.weights.h5``)."""
    suffix = "".join(path.suffixes)  # keep compound endings such as .weights.h5
    return (path.name[: len(path.name) - len(suffix)] if suffix else path.name), suffix


def _temporary_prefix(stem: str) -> str:
    """The start of this host's temporary names for targets named ``stem`` (a glob pattern may be given)."""
    return f".{stem}.tmp-{socket.gethostname()}-"


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, stem: str | None = None) -> list[Path]:
    """Remove the temporary files that atomic writes killed on this host left in ``folder`` (those of
    targets named ``stem``, or all), keeping those of writers still running. Returns the paths removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = re.escape(socket.gethostname())
    writer = re.compile(rf"\.(?P<stem>.*)\.tmp-{host}-(?P<pid>\d+)-")
    removed = []
    for candidate in folder.glob(_temporary_prefix(glob.escape(stem) if stem is not None else "*") + "*"):
        match = writer.match(candidate.name)
        if match and (stem is None or match["stem"] == stem) and not _is_running(int(match["pid"])):
            try:
                if candidate.is_dir():  # a directory made whole before its rename (a new run directory)
                    shutil.rmtree(candidate)
                else:
                    candidate.unlink()
                removed.append(candidate)
            except FileNotFoundError:  # another process removed it first
                pass
    return removed


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


def append_synced(path: str | os.PathLike, data: bytes) -> None:
    """Append ``data`` to ``path`` (created if missing) and sync it to disk. A write may take only part of
    the data (a disk filling up): it goes on until all is written; on an error the file is cut back to
    its former end, so that it holds only whole appends, and the error is raised."""
    data = memoryview(data)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    end = os.lseek(fd, 0, os.SEEK_END)
    try:
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    except OSError:
        os.ftruncate(fd, end)
        raise
    finally:
        os.close(fd)


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

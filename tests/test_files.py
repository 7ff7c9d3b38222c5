"""emolib.files: atomic writes and the repair of a file whose last append was cut short."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import pytest

from emolib.files import cut_torn_line, remove_stale_temporaries, write_atomic


@pytest.mark.parametrize(("data", "kept"), [
    (b"", b""), (b"no newline yet", b""), (b"a\nb", b"a\n"), (b"a\nb\n", b"a\nb\n"),
    (b"x" * 70_000 + b"\n" + b"y" * 70_000, b"x" * 70_000 + b"\n"),  # across the 64 KiB read blocks
])
def test_a_torn_last_line_is_cut_and_whole_lines_kept(tmp_path, data, kept):
    path = tmp_path / "records.jsonl"
    path.write_bytes(data)
    assert cut_torn_line(path) == len(kept)
    assert path.read_bytes() == kept


def test_cutting_a_missing_file_does_nothing(tmp_path):
    assert cut_torn_line(tmp_path / "none.csv") == 0
    assert not (tmp_path / "none.csv").exists()


def test_an_atomic_write_replaces_the_whole_file(tmp_path):
    path = write_atomic(tmp_path / "sub" / "a.txt", "first")
    write_atomic(path, b"second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]  # no temporary file left behind


def _temporary(folder, stem, suffix, pid):
    """A temporary file as an atomic write by process ``pid`` names it."""
    path = folder / f".{stem}.tmp-{socket.gethostname()}-{pid}-abc123{suffix}"
    path.write_bytes(b"half")
    return path


def test_temporaries_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    """Issue 38's kill campaign: each kill during an atomic write left its temporary file for good (a
    whole cache file's size, a model's), one more per kill."""
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid names a process that no longer runs
    dead = _temporary(tmp_path, "cache", ".npy", finished.pid)
    live = _temporary(tmp_path, "cache", ".npy", os.getpid())
    other = _temporary(tmp_path, "best", ".weights.h5", finished.pid)
    write_atomic(tmp_path / "cache.npy", b"whole")
    assert not dead.exists() and live.exists() and other.exists()
    assert remove_stale_temporaries(tmp_path) == [other]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cache.npy", live.name])


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    """Issue 38, a full disk: the write fails half way; the file keeps its former content."""
    path = write_atomic(tmp_path / "state.json", "before")

    def disk_full(tmp):
        tmp.write_bytes(b"hal")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, disk_full)
    assert path.read_text() == "before" and [p.name for p in tmp_path.iterdir()] == ["state.json"]

"""emolib.files: atomic writes and the repair of a file whose last append was cut short."""

from __future__ import annotations

import pytest

from emolib.files import cut_torn_line, write_atomic


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

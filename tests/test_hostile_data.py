"""Hostile datasets (issue 38): every hostile file of tests/hostile_files.py in every layout it fits gets
a clear error naming the file, or a skip that is counted with its reason — never a crash, never a wrong
label; and the skips reach the data report, the cache and the run's data record."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import hostile_files as H
import numpy as np
import pytest

from emolib import data as D
from emolib.runs.splits import load_data

CASES = H.image_cases() + H.table_cases()


@pytest.mark.parametrize("reader, name, write, owed", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_each_hostile_file_gets_a_clear_error_or_a_counted_skip(tmp_path, reader, name, write, owed):
    got, detail = H.run(reader, write, owed, tmp_path / "ds", tmp_path / "cache")
    assert got == owed, detail


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    """Defect: a 60 kB PNG of 8000×8000 pixels was decoded whole (64 MB each, times the decode threads),
    and a JPEG header claiming 65000×65000 raised OpenCV's cv2.error out of load_split."""
    bombs = {"bomb.png": H.bomb_png(8000, 8000), "claims.jpg": H.header_bomb_jpeg()}
    folder = H.write_folders(tmp_path, bombs)
    decoded, imdecode = [], cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda data, flag: decoded.append(data) or imdecode(data, flag))
    split = D.load_split("folders", tmp_path, "train", cache=False)
    assert sorted(split.skipped) == [str(folder / "bomb.png"), str(folder / "claims.jpg")]
    assert all("image too large" in reason for reason in split.skip_reasons)
    assert len(decoded) == len(split) == 4  # only the good faces reached the decoder


def test_skip_reasons_survive_the_cache_and_reach_the_data_report(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIB_CACHE", str(tmp_path / "cache"))
    folder = H.write_folders(tmp_path / "ds", {"empty.png": b"", "notes.jpg": b"my notes\n" * 9})
    first = D.load_split("folders", tmp_path / "ds", "train")
    again = D.load_split("folders", tmp_path / "ds", "train")  # from the cache
    assert again.skipped == first.skipped == [str(folder / "empty.png"), str(folder / "notes.jpg")]
    assert again.skip_reasons == first.skip_reasons
    assert "empty" in first.skip_reasons[0] and "not a readable image" in first.skip_reasons[1]
    assert first.subset([0, 1]).skip_reasons == first.skip_reasons
    report = D.summarize("folders", tmp_path / "ds")["splits"]["train"]["skipped"]
    assert report == {"count": 2, "first": first.skipped, "reasons": first.skip_reasons}
    done = subprocess.run([sys.executable, "-m", "emolib", "data", "--dataset", "folders", "--data",
                           str(tmp_path / "ds")], capture_output=True, text=True, check=True,
                          env={**os.environ, "EMOLIB_CACHE": str(tmp_path / "cache")})
    assert f"skipped: {folder / 'notes.jpg'}: not a readable image" in done.stdout


def test_the_run_data_record_counts_skips_of_every_split_with_reasons(tmp_path, monkeypatch, capsys):
    """Defect: with a dataset's own validation split (FER+ ``valid``), its skipped files were not counted
    in the run's data record (params.json, the card's training_data)."""
    monkeypatch.setenv("EMOLIB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "ferplus"
    H.write_ferplus(root, {"cut.png": H.face_png()[:40]}, [H.vote_line("cut.png", 0)])
    for folder in ("FER2013Valid", "FER2013Test"):
        (root / folder).mkdir()
        (root / folder / "a.png").write_bytes(H.face_png(H.GOOD_VALUES[1]))
        (root / folder / "b.png").write_bytes(b"")
        (root / folder / "label.csv").write_text(f"{H.vote_line('a.png', 1)}\n{H.vote_line('b.png', 1)}\n")
    *_, info = load_data("ferplus", root, 48, 1, val_split="valid")
    assert info["skipped"] == 3
    assert sorted(os.path.relpath(s, root) for s in info["skipped_first"]) == [
        "FER2013Test/b.png", "FER2013Train/cut.png", "FER2013Valid/b.png"]
    assert info["skipped_first"][str(root / "FER2013Valid" / "b.png")] == "empty image: no bytes received"
    assert "corrupt or truncated" in info["skipped_first"][str(root / "FER2013Train" / "cut.png")]
    assert "skipped 3 unreadable file(s)" in capsys.readouterr().err
    json.dumps(info)  # recordable as it is


def test_a_permission_denied_image_is_skipped_with_the_reason(tmp_path):
    """``chmod 000`` where the tests do not run as root; as root (who reads anything) the same
    PermissionError, raised where emolib reads image files (tests/hostile_files.py: ``unreadable``)."""
    folder = H.write_folders(tmp_path, {"locked.png": H.face_png(H.GOOD_VALUES[0])})
    with H.unreadable(folder / "locked.png"):
        split = D.load_split("folders", tmp_path, "train", cache=False)
    assert split.skipped == [str(folder / "locked.png")]
    assert "Permission denied" in split.skip_reasons[0] and len(split) == 4


def test_a_file_name_that_is_not_utf8_is_read(tmp_path, monkeypatch):
    """Defect: the cache key encoded file names as UTF-8 and raised UnicodeEncodeError for a Latin-1
    name (a folder unpacked from an old archive)."""
    monkeypatch.setenv("EMOLIB_CACHE", str(tmp_path / "cache"))
    name = os.fsdecode(b"caf\xe9.png")
    H.write_folders(tmp_path / "ds", {name: H.face_png(H.GOOD_VALUES[0])})
    split = D.load_split("folders", tmp_path / "ds", "train")
    assert len(split) == 5 and not H.wrong_labels(split, {"happy": H.GOOD_VALUES[0], "sad": H.GOOD_VALUES[1]})
    assert D.load_split("folders", tmp_path / "ds", "train").fingerprint == split.fingerprint


def test_fer2013_csv_bad_pixel_rows_are_skipped_with_their_line(tmp_path):
    """Defects: a non-numeric or out-of-range pixel, or an empty pixels cell, raised from the scan
    (ValueError without the file, OverflowError, AttributeError); a 46×46 row was taken as a face."""
    rows = [H.fer2013_row(3, count=2116), "3,1 2 x,Training", H.fer2013_row(3, value=300), "3,,Training"]
    csv = H.write_fer2013_csv(tmp_path, rows)
    split = D.load_split("fer2013", csv, "train", cache=False)
    assert split.skipped == [f"{csv}#row={row}" for row in (7, 8, 9, 10)]
    assert split.skip_reasons == ["line 9: 2116 pixel values, not 2304 (48×48)",
                                  "line 10: a pixel value is not a whole number",
                                  "line 11: a pixel value is outside 0..255", "line 12: no pixel values"]
    assert [split.classes[i] for i in split.labels] == list(D.L.EMOTIONS_7)


def test_fer2013_csv_rows_of_no_split_are_an_error(tmp_path):
    """Defect: a row whose Usage is none of Training / PublicTest / PrivateTest was in no split, unsaid."""
    csv = H.write_fer2013_csv(tmp_path, [H.fer2013_row(3, usage="Validation")])
    with pytest.raises(ValueError, match=r"fer2013.csv:9: Usage 'Validation' is none of"):
        D.load_split("fer2013", csv, "test", cache=False)


@pytest.mark.parametrize("line, message", [
    ('x.png,"(0, 0, 48, 48)",1,2,3,4,0,0,0,0,0', r"label.csv:4: cannot read '1,2,3,4,0,0,0,0,0,'"),
    ('y.png,"(0, 0, 48, 48)",4,,0,1,3,2,0,0,0,0', r"label.csv:4: cannot read '4,,0,1"),
    ('y.png,"(0, 0, 48, 48)",4.5,0,0,1,3,2,0,0,0,0', r"label.csv:4: .*each a whole number ≥ 0"),
    (H.vote_line("fer0000000.png", 3), r"fer0000000.png is listed twice \(lines 1 and 4\)"),
])
def test_ferplus_votes_that_would_give_a_wrong_label_are_an_error(tmp_path, line, message):
    """Defects: a row missing a vote or with an empty one was read as NaN cast to a huge int, a fractional
    vote was truncated, and an image listed twice got both labels — all silently."""
    H.write_ferplus(tmp_path, {"x.png": H.face_png(), "y.png": H.face_png()}, [line])
    with pytest.raises(ValueError, match=message):
        D.load_split("ferplus", tmp_path, "train", cache=False)


def test_affectnet_and_expw_label_errors_name_the_file_and_line(tmp_path):
    """Defects: a missing column was a KeyError, a row without a path a TypeError, a non-numeric code or
    box a ValueError without the file; a duplicate row was used twice."""
    csv = H.write_affectnet(tmp_path / "a", rows=[",0,0,48,48,,3,0.1,0.2"])
    with pytest.raises(ValueError, match=r"training.csv:10: no image name"):
        D.load_split("affectnet", tmp_path / "a", "train", cache=False)
    csv.write_text(H.AFFECTNET_HEADER.replace(",valence", "") + "\n1/0.png,0,0,48,48,,0,0.2\n")
    with pytest.raises(ValueError, match=r"training.csv lacks column\(s\) \['valence'\]"):
        D.load_split("affectnet", tmp_path / "a", "train", cache=False)
    H.write_expw(tmp_path / "e", lines=[H.expw_line("p3.png", 4)])
    with pytest.raises(ValueError, match=r"label.lst: face p3.png#face=0 is listed twice \(lines 4 and 8\)"):
        D.load_split("expw", tmp_path / "e", "train", cache=False)
    notes = H.write_affectnet_per_image(tmp_path / "p")
    np.save(notes / "2_val.npy", np.array("high"))
    with pytest.raises(ValueError, match=r"2_val.npy: cannot read this annotation"):
        D.load_split("affectnet", tmp_path / "p", "train", cache=False)

"""Streaming folder prediction (``emolib predict DIR --out``): records, errors, resume, formats."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from emolib import commands, folder_predict


def predict(folder, out, model, *options) -> int:
    """``emolib predict FOLDER --out OUT --model MODEL --chunk 2 [options]``: its exit code."""
    return commands.main(["predict", str(folder), "--out", str(out), "--model", str(model), "--chunk", "2",
                          *options])


def by_name(records) -> dict:
    return {Path(r["path"]).name: r for r in records}


def test_one_record_per_image_with_faces_or_the_error(photo_folder, tiny_model_dir, tmp_path):
    out = tmp_path / "p.jsonl"
    assert predict(photo_folder, out, tiny_model_dir, "--recursive") == 1  # one image could not be read
    records = by_name(folder_predict.JsonlOutput(out).read())
    assert sorted(records) == ["a-face.jpg", "b-no-face.png", "c-broken.jpg", "d-face.jpg"]
    assert records["a-face.jpg"]["path"] == str(photo_folder / "a-face.jpg")
    for name in ("a-face.jpg", "d-face.jpg"):
        face = records[name]
        assert face["error"] is None and face["faces_detected"] == 1
        assert face["predictions"][0]["box"]["w"] > 50
        assert sum(face["predictions"][0]["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert records["a-face.jpg"]["predictions"] == records["d-face.jpg"]["predictions"]
    assert records["b-no-face.png"]["faces_detected"] == 0 and records["b-no-face.png"]["error"] is None
    broken = records["c-broken.jpg"]
    assert broken["faces_detected"] is None and broken["predictions"] == []
    assert "image" in broken["error"].lower()


def test_without_recursive_sub_folders_are_left_out(photo_folder, tiny_model_dir, tmp_path):
    out = tmp_path / "p.jsonl"
    predict(photo_folder, out, tiny_model_dir)
    assert "d-face.jpg" not in by_name(folder_predict.JsonlOutput(out).read())


def test_rerun_skips_done_images_and_cuts_a_torn_line(photo_folder, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    predict(photo_folder, out, tiny_model_dir, "--recursive")
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:25])  # killed while writing the second chunk
    capsys.readouterr()
    predict(photo_folder, out, tiny_model_dir, "--recursive", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == 2 and summary["images"] == 2
    again = folder_predict.JsonlOutput(out).read()
    assert len(again) == 4 and len({r["path"] for r in again}) == 4
    assert by_name(again) == by_name(json.loads(line) for line in lines)
    predict(photo_folder, out, tiny_model_dir, "--recursive", "--json")
    assert json.loads(capsys.readouterr().out)["images"] == 0  # all done: nothing predicted


def test_parquet_output_holds_the_same_records(photo_folder, tiny_model_dir, tmp_path):
    predict(photo_folder, tmp_path / "p.jsonl", tiny_model_dir, "--recursive")
    predict(photo_folder, tmp_path / "p.parquet", tiny_model_dir, "--recursive")
    parts = sorted(p.name for p in (tmp_path / "p.parquet").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet"]  # one part per chunk of 2
    assert by_name(folder_predict.ParquetOutput(tmp_path / "p.parquet").read()) == \
        by_name(folder_predict.JsonlOutput(tmp_path / "p.jsonl").read())
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 4


def test_a_folder_needs_out_and_out_needs_a_known_suffix(photo_folder, tiny_model_dir, tmp_path, capsys):
    assert commands.main(["predict", str(photo_folder), "--model", str(tiny_model_dir)]) == 2
    assert "give --out predictions.jsonl" in capsys.readouterr().err
    assert predict(photo_folder, tmp_path / "p.csv", tiny_model_dir) == 2
    assert "--out must end in .jsonl or .parquet" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_without_ray_installed_ray_says_how_to_install(photo_folder, tiny_model_dir, tmp_path, monkeypatch,
                                                       capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    assert predict(photo_folder, tmp_path / "p.jsonl", tiny_model_dir, "--ray") == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()


def test_a_full_disk_keeps_whole_records_says_so_and_the_rerun_finishes(photo_folder, tiny_model_dir,
                                                                       tmp_path, monkeypatch, capsys):
    """Issue 38, a full disk: the second chunk's append fits only in part (a short write, then ENOSPC).
    The part written was kept as if complete (os.write's count unchecked); now the file is cut back to
    its whole records, the command says the disk is full, and the same command later finishes."""
    import errno

    out = tmp_path / "p.jsonl"
    original, calls = os.write, []

    def filling_disk(fd, data):
        calls.append(1)
        if len(calls) == 2:
            return original(fd, bytes(data[:len(data) // 2]))  # what still fitted
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(fd, data)

    monkeypatch.setattr(folder_predict.os, "write", filling_disk)
    assert predict(photo_folder, out, tiny_model_dir, "--recursive") == 2
    err = capsys.readouterr().err
    assert "No space left" in err and "the disk is full" in err and "already in --out are skipped" in err
    monkeypatch.undo()
    kept = folder_predict.JsonlOutput(out).read()  # every line whole: the first chunk only
    assert len(kept) == 2 and out.read_bytes().endswith(b"\n")
    predict(photo_folder, out, tiny_model_dir, "--recursive", "--json")
    assert json.loads(capsys.readouterr().out)["skipped"] == 2
    assert len({r["path"] for r in folder_predict.JsonlOutput(out).read()}) == 4

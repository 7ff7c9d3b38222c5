"""Streaming folder prediction (``emolib predict DIR --out``): records, errors, resume, formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emolib import batch, cli

FACE = "grace_hopper.jpg"


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photos_dir) -> Path:
    """Two faces (one in a sub-folder), an image without a face, an unreadable .jpg and a text file."""
    root = tmp_path_factory.mktemp("photos")
    shutil.copy(photos_dir / FACE, root / "a-face.jpg")
    Image.fromarray(np.full((160, 200, 3), 128, np.uint8)).save(root / "b-no-face.png")
    (root / "c-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("not an image")
    (root / "sub").mkdir()
    shutil.copy(photos_dir / FACE, root / "sub" / "d-face.jpg")
    return root


def predict(folder, out, model, *options) -> int:
    return cli.main(["predict", str(folder), "--out", str(out), "--model", str(model), "--chunk", "2", *options])


def by_name(records) -> dict:
    return {Path(r["path"]).name: r for r in records}


def test_one_record_per_image_with_faces_or_the_error(folder, tiny_model_dir, tmp_path):
    out = tmp_path / "p.jsonl"
    assert predict(folder, out, tiny_model_dir, "--recursive") == 1  # one image could not be read
    records = by_name(batch.JsonlOutput(out).read())
    assert sorted(records) == ["a-face.jpg", "b-no-face.png", "c-broken.jpg", "d-face.jpg"]
    assert records["a-face.jpg"]["path"] == str(folder / "a-face.jpg")
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


def test_without_recursive_sub_folders_are_left_out(folder, tiny_model_dir, tmp_path):
    out = tmp_path / "p.jsonl"
    predict(folder, out, tiny_model_dir)
    assert "d-face.jpg" not in by_name(batch.JsonlOutput(out).read())


def test_rerun_skips_done_images_and_cuts_a_torn_line(folder, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    predict(folder, out, tiny_model_dir, "--recursive")
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:25])  # killed while writing the second chunk
    capsys.readouterr()
    predict(folder, out, tiny_model_dir, "--recursive", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == 2 and summary["images"] == 2
    again = batch.JsonlOutput(out).read()
    assert len(again) == 4 and len({r["path"] for r in again}) == 4
    assert by_name(again) == by_name(json.loads(line) for line in lines)
    predict(folder, out, tiny_model_dir, "--recursive", "--json")
    assert json.loads(capsys.readouterr().out)["images"] == 0  # all done: nothing predicted


def test_parquet_output_holds_the_same_records(folder, tiny_model_dir, tmp_path):
    predict(folder, tmp_path / "p.jsonl", tiny_model_dir, "--recursive")
    predict(folder, tmp_path / "p.parquet", tiny_model_dir, "--recursive")
    parts = sorted(p.name for p in (tmp_path / "p.parquet").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet"]  # one part per chunk of 2
    assert by_name(batch.ParquetOutput(tmp_path / "p.parquet").read()) == \
        by_name(batch.JsonlOutput(tmp_path / "p.jsonl").read())
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 4


def test_a_folder_needs_out_and_out_needs_a_known_suffix(folder, tiny_model_dir, tmp_path, capsys):
    assert cli.main(["predict", str(folder), "--model", str(tiny_model_dir)]) == 2
    assert "give --out predictions.jsonl" in capsys.readouterr().err
    assert predict(folder, tmp_path / "p.csv", tiny_model_dir) == 2
    assert "--out must end in .jsonl or .parquet" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()

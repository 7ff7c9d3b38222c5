"""Ray, for real (a local Ray with 2 CPUs): grid runs as Ray tasks, folder prediction on Ray Data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from emolib import commands, folder_predict
from emolib import experiments as X

REPO = Path(__file__).resolve().parents[1]
#: the quick grid at its smallest: its defaults, with 10 faces per class and one epoch
TINY = {"max_per_class": 10, "epochs": 1, "batch_size": 16}
pytestmark = pytest.mark.slow


def quick_subset(path: Path, fer2013_dir: Path, experiments: list[dict]) -> Path:
    """A grid file with the quick grid's defaults (made tiny) and the given experiments."""
    quick = yaml.safe_load((REPO / "experiments" / "quick.yaml").read_text())
    defaults = {**quick["defaults"], **TINY, "data": str(fer2013_dir)}
    path.write_text(yaml.safe_dump({"defaults": defaults, "experiments": experiments}))
    return path


# ---------------------------------------------------------------------------------------------------
# Grid: the same runs with and without --ray, a failing cell, a killed driver
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def both_grids(tmp_path_factory, fer2013_dir, ray_local):
    """Three cells (a training run, a failing one, the comparison notebook), run locally and on Ray."""
    tmp = tmp_path_factory.mktemp("ray_grid")
    path = quick_subset(tmp / "three.yaml", fer2013_dir, [
        {"notebook": "notebooks/02-simple-cnn.ipynb",
         "grid": {"backbone": ["simple_cnn", "no_such_backbone"]}},
        {"notebook": "notebooks/06-compare-runs.ipynb", "parameters": {"runs": ["${output}"]}},
    ])
    codes = {where: commands.main(["experiments", "run", str(path), "--output", str(tmp / where), *extra])
                  for where, extra in (("local", []), ("ray", ["--ray", "--jobs", "2"]))}
    return codes, tmp / "local" / "three", tmp / "ray" / "three"


def test_grid_on_ray_gives_the_same_run_dirs_and_summary(both_grids):
    codes, local, on_ray = both_grids
    assert codes == {"local": 1, "ray": 1}  # one cell fails in both
    names = sorted(p.name for p in local.iterdir() if p.is_dir())
    assert names == sorted(p.name for p in on_ray.iterdir() if p.is_dir())
    assert names == ["02-simple-cnn--backbone=no_such_backbone", "02-simple-cnn--backbone=simple_cnn",
                     "06-compare-runs"]
    for name in names:
        files = {p.name for p in (local / name).iterdir()}
        assert files == {p.name for p in (on_ray / name).iterdir()}, name
        assert {k: v for k, v in X.read_record(local / name).items() if k in ("status", "error")} == \
               {k: v for k, v in X.read_record(on_ray / name).items() if k in ("status", "error")}
    same = ["run", "backbone", "input", "learning_rate", "batch_size", "max_per_class", "train_images",
            "test_images", "epochs_run", "parameters"]
    tables = [X.runs_table(out) for out in (local, on_ray)]
    assert len(tables[0]) == 1 and tables[0][same].equals(tables[1][same])
    status = [(out / "summary.md").read_text().split("```")[1] for out in (local, on_ray)]
    assert status[0].replace(str(local), "") == status[1].replace(str(on_ray), "")


def test_failing_cell_on_ray_is_recorded_and_the_others_finish(both_grids):
    _, _, on_ray = both_grids
    record = X.read_record(on_ray / "02-simple-cnn--backbone=no_such_backbone")
    assert record["status"] == "failed"
    assert record["error"].startswith("ValueError: unknown backbone 'no_such_backbone'")
    assert X.is_finished(on_ray / "02-simple-cnn--backbone=simple_cnn")
    assert "FAILED 02-simple-cnn--backbone=no_such_backbone" in (on_ray / "summary.md").read_text()


def test_comparison_notebook_on_ray_starts_after_the_runs_before_it(both_grids):
    _, _, on_ray = both_grids
    compare = X.read_record(on_ray / "06-compare-runs")
    assert compare["status"] == "ok"
    started = time.mktime(time.strptime(compare["started"], "%Y-%m-%dT%H:%M:%S"))
    for name in ("02-simple-cnn--backbone=simple_cnn", "02-simple-cnn--backbone=no_such_backbone"):
        record = X.read_record(on_ray / name)
        ended = time.mktime(time.strptime(record["started"], "%Y-%m-%dT%H:%M:%S")) + record["seconds"]
        assert started >= ended - 1, name  # 1 s: "started" is rounded to the second


def test_killed_driver_then_rerun_finishes_only_the_rest(tmp_path, fer2013_dir, ray_local):
    path = quick_subset(tmp_path / "two.yaml", fer2013_dir, [
        {"notebook": "notebooks/02-simple-cnn.ipynb", "grid": {"learning_rate": [0.001, 0.01]}}])
    out = tmp_path / "out" / "two"
    first, second = (out / f"02-simple-cnn--learning_rate={lr}" for lr in ("0.001", "0.01"))
    driver = subprocess.Popen([sys.executable, "-m", "emolib", "experiments", "run", str(path), "--output",
                               str(tmp_path / "out"), "--ray", ray_local, "--jobs", "1"],
                              cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not (X.is_finished(first) and (X.read_record(second) or {}).get("status") == "running"):
            assert driver.poll() is None, "the driver ended before it could be killed"
            assert time.monotonic() < deadline, "the first run did not finish in 10 minutes"
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert not X.is_finished(second)
    card = (first / "model.json").stat().st_mtime_ns
    grid = X.run_grid_ray(path, tmp_path / "out", progress=False)
    assert [run.status for run in grid.runs] == ["skipped", "ok"]
    assert X.is_finished(second) and (first / "model.json").stat().st_mtime_ns == card


def test_ray_options_need_ray_and_bad_resources_fail_early(tmp_path, fer2013_dir, capsys):
    path = quick_subset(tmp_path / "g.yaml", fer2013_dir, [
        {"notebook": "notebooks/02-simple-cnn.ipynb", "resources": {"num_gpu": 1}}])
    assert commands.main(["experiments", "run", str(path), "--output", str(tmp_path / "out"), "--ray"]) == 2
    assert "unknown resource 'num_gpu'" in capsys.readouterr().err
    assert commands.main(["experiments", "run", str(path), "--output", str(tmp_path / "out"),
                          "--jobs", "2"]) == 2
    assert "go with --ray" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_grid_resources_reach_each_run(tmp_path, fer2013_dir):
    path = quick_subset(tmp_path / "g.yaml", fer2013_dir, [
        {"notebook": "notebooks/02-simple-cnn.ipynb", "resources": {"num_cpus": 2}},
        {"notebook": "notebooks/06-compare-runs.ipynb", "parameters": {"runs": ["${output}"]}}])
    text = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**text, "resources": {"num_gpus": 1}}))
    first, compare = X.load_grid(path, tmp_path / "out").runs
    assert first.resources == {"num_gpus": 1, "num_cpus": 2} and not first.reads_output
    assert compare.resources == {"num_gpus": 1} and compare.reads_output


# ---------------------------------------------------------------------------------------------------
# Folder prediction on Ray Data
# ---------------------------------------------------------------------------------------------------

def comparable(records) -> dict:
    """Records by path, probabilities rounded (batches differ between runs)."""
    result = {}
    for record in records:
        record = json.loads(json.dumps(record))
        for face in record.get("predictions") or []:
            face["probabilities"] = {k: round(v, 4) for k, v in face["probabilities"].items()}
            face["confidence"] = round(face["confidence"], 2)
        result[record["path"]] = record
    return result


def test_predict_on_ray_writes_the_same_records_and_resumes(photo_folder, tiny_model_dir, tmp_path, ray_local,
                                                            capsys):
    local, on_ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    common = ["--model", str(tiny_model_dir), "--recursive", "--chunk", "2", "--json"]
    assert commands.main(["predict", str(photo_folder), "--out", str(local), *common]) == 1  # the broken file
    records = folder_predict.JsonlOutput(local).read()
    on_ray.write_text("".join(json.dumps(r) + "\n" for r in records[:1]))  # one image already done
    capsys.readouterr()
    assert commands.main(["predict", str(photo_folder), "--out", str(on_ray), "--ray", "--workers", "2",
                          *common]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == 1 and summary["images"] == 3 and summary["errors"] == 1
    assert comparable(folder_predict.JsonlOutput(on_ray).read()) == comparable(records)
    assert len(folder_predict.JsonlOutput(on_ray).read()) == 4

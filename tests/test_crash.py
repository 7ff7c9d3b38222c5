"""bench/crash.py, small: a few seeded SIGKILLs per job (issue 38), each job run again as a user would
and compared with an uninterrupted run. The full campaign (50 kill points per job) is
``python bench/crash.py``; its table is in results/benchmarks.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The campaign's scratch folder: its inputs (tiny model, photos, clip, faces, grid) are made once."""
    return tmp_path_factory.mktemp("crash")


def campaign(work: Path, jobs: str, points: int) -> list[dict]:
    """``bench/crash.py --points POINTS --jobs JOBS --json``: one tally per job."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "crash.py"), "--points", str(points), "--chain", "2",
         "--seed", "0", "--jobs", jobs, "--work", str(work), "--json"],
        capture_output=True, text=True, timeout=1200, env={**os.environ, "PYTHONPATH": str(REPO)})
    text = "\n" + done.stdout
    assert done.returncode in (0, 1) and "\n[\n" in text, done.stderr[-3000:]
    return json.loads(text[text.rindex("\n[\n") + 1:])


def check(tallies: list[dict], points: int) -> None:
    for tally in tallies:
        where = f"{tally['job']}: {tally['findings']}"
        assert tally["points"] == points, where  # every kill point was a kill
        assert tally["mismatches"] == 0 and tally["bad_files"] == 0 and tally["lost"] == 0, where
        assert tally["failed_reruns"] == 0 and tally["orphans"] == 0, where
        assert tally["resumed_ok"] == points and tally["records"] > 0, where


def test_killed_predictions_videos_and_cache_builds_end_as_if_never_killed(work):
    check(campaign(work, "cache,predict-jsonl,predict-parquet,video", 2), 2)


@pytest.mark.slow
@pytest.mark.parametrize("job", ["train", "experiments"])
def test_a_killed_training_or_grid_ends_as_if_never_killed(work, job):
    check(campaign(work, job, 1), 1)

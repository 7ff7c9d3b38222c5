"""bench/gpu_check.py, the prepared GPU check, runs here with tiny steps on this machine's CPU or GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import nvidia_smi_gpus

pytestmark = pytest.mark.backend  # run on every backend (see the Makefile)

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_trains_both_backbones_and_reports_speed_memory_precision_device(fer2013_dir, machine_gpus,
                                                                                   machine_precision):
    process = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--data", str(fer2013_dir), "--steps", "2", "--warmup", "1",
         "--batch-size", "4", "--json"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(process.stdout.strip().splitlines()[-1])
    assert result["backend"].split()[0] == os.environ["KERAS_BACKEND"]
    if machine_gpus:  # one name a GPU, as the NVIDIA driver names them
        names = result["device"].split(", ")
        assert len(names) == len(machine_gpus) and set(names) <= set(nvidia_smi_gpus()), result["device"]
    else:
        assert result["device"] == "CPU only"
    assert [(row["backbone"], row["input"]) for row in result["rows"]] == [("compact_vgg", "48x48x1"),
                                                                           ("vgg16", "100x100x1")]
    for row in result["rows"]:
        assert row["steps"] == 2 and row["batch_size"] == 4
        assert row["faces_per_s"] > 0 and row["ms_per_step"] > 0
        assert row["precision"] == machine_precision
        if machine_gpus:
            assert row["peak_accelerator_mb"] > 0
        else:
            assert row["peak_accelerator_mb"] is None

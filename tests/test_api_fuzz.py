"""The API fuzzed from its own OpenAPI schema (Schemathesis) on a real uvicorn: the bounded run of
bench/fuzz_api.py (seeded, so every run sends the same requests): no 5xx, no response outside the schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fuzzing_the_api_from_its_schema_finds_no_5xx_and_no_schema_break(yunet_path, tmp_path):
    """The shipped model on the ONNX runtime (a real card; no framework to import, so a quick start)."""
    out = tmp_path / "fuzz.json"
    env = {**os.environ, "EMOLIB_SHARED": str(yunet_path.parents[1])}
    command = [sys.executable, "bench/fuzz_api.py", "--model", "emolib-fer2013", "--examples", "40",
               "--seed", "0", "--json", str(out)]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(out.read_text())
    failures = (summary["5xx"], summary["schema_violations"], summary["other_failures"])
    assert failures == (0, 0, 0), run.stdout[-6000:]
    assert summary["server_alive"] and run.returncode == 0
    endpoints = summary["endpoints"]
    assert {"GET /", "GET /test", "GET /health", "POST /predict"} <= set(endpoints)
    assert summary["requests"] >= 250
    # real photos were predicted, and every refusal the contract documents was met
    assert {"200", "400", "413", "415", "422"} <= set(endpoints["POST /predict"]["statuses"])

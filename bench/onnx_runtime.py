"""Keras vs ONNX runtime, interleaved: API start-up time, resident memory after start and after 200 requests,
photo → result latency on the two shared portraits (one API process per runtime and round).

    .venv/bin/python bench/onnx_runtime.py [--rounds 2] [--requests 200]

Prints one markdown table (medians over rounds). Each measurement runs in a fresh subprocess, so the
Keras runs' imports never reach the ONNX runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from _photos import PHOTOS, photo_path

CHILD = r"""
import json, sys, time
start = time.perf_counter()
import psutil
from fastapi.testclient import TestClient
from emolib.serve import create_app
client = TestClient(create_app("emolib-ferplus", runtime=sys.argv[1]))
started = time.perf_counter() - start
rss_start = psutil.Process().memory_info().rss / 2**20
photos = [open(p, "rb").read() for p in sys.argv[3:]]
latencies = []
for i in range(int(sys.argv[2])):
    t = time.perf_counter()
    r = client.post("/predict", files={"file": ("p", photos[i % len(photos)], "image/jpeg")})
    latencies.append((time.perf_counter() - t) * 1000)
    assert r.status_code == 200, r.text
heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
print(json.dumps({"start_s": started, "rss_start_mb": rss_start,
                  "rss_after_mb": psutil.Process().memory_info().rss / 2**20,
                  "latency_ms": sorted(latencies)[len(latencies) // 2], "frameworks": heavy}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    photos = [str(photo_path(name)) for name in PHOTOS]
    results = {"keras": [], "onnx": []}
    for _ in range(args.rounds):
        for runtime in results:  # interleaved
            out = subprocess.run([sys.executable, "-c", CHILD, runtime, str(args.requests), *photos],
                                 capture_output=True, text=True, check=True)
            results[runtime].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| runtime | start-up (s) | RSS after start (MB) | RSS after requests (MB) | "
          "median request, photo → result (ms) | TensorFlow/Keras imported |")
    print("|---|---|---|---|---|---|")
    for runtime, runs in results.items():
        med = {key: statistics.median(run[key] for run in runs)
               for key in ("start_s", "rss_start_mb", "rss_after_mb", "latency_ms")}
        print(f"| {runtime} | {med['start_s']:.2f} | {med['rss_start_mb']:.0f} | {med['rss_after_mb']:.0f} | "
              f"{med['latency_ms']:.1f} | {', '.join(runs[0]['frameworks']) or 'no'} |")


if __name__ == "__main__":
    main()

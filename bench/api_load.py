"""Load test of the REST API: a real uvicorn server on 127.0.0.1, concurrent clients, latency.

    .venv/bin/python bench/api_load.py [--requests 200] [--concurrency 16]

Starts ``python -m emolib serve`` on a free loopback port in a subprocess (YuNet, the default shipped
model), waits for
``GET /test``, then
sends ``--requests`` ``POST /predict`` uploads of the two portraits (61 kB JPEG and 790 kB PNG, in
turn) from ``--concurrency`` client threads, and then a round of bad uploads (empty, text, truncated,
a decompression-bomb header) that must all be 4xx. Only loopback traffic. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _photos  # noqa: E402
from helpers import free_port  # noqa: E402

from emolib.dashboard import stop_process  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def model_dir() -> tuple[str, str]:
    """(model directory, description) of the default shipped model."""
    from emolib import models

    return str(models.DEFAULT_MODEL_DIR), f"shipped model {models.DEFAULT_MODEL_DIR.name}"


def start_server(model: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "EMOLIB_MODEL_DIR": str(_photos.YUNET.parent)}
    command = [sys.executable, "-m", "emolib", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--model", model, "--detector", "yunet"]
    log = tempfile.TemporaryFile(mode="w+")  # not a pipe: a full pipe would block the server
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    server.log = log
    return server


def server_log(server: subprocess.Popen) -> str:
    server.log.seek(0)
    return server.log.read()[-4000:]


def wait_ready(server: subprocess.Popen, url: str, timeout: float = 180) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}:\n{server_log(server)}")
        try:
            if httpx.get(f"{url}/test", timeout=2).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server not ready after {timeout} s")


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def hammer(client: httpx.Client, url: str, payloads: list[tuple[str, bytes]], concurrency: int):
    """POST every payload, ``concurrency`` at a time: [(status or exception name, seconds)]."""

    def one(item):
        name, data = item
        start = time.perf_counter()
        try:
            status = client.post(f"{url}/predict", files={"file": (name, data)}).status_code
        except httpx.HTTPError as error:
            status = type(error).__name__
        return status, time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, payloads))


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)

    model, model_note = model_dir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(model, port)
    try:
        ready = wait_ready(server, url)
        photos = [(name, _photos.photo_path(name).read_bytes()) for name in _photos.PHOTOS]
        jpeg = photos[1][1]
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        with httpx.Client(timeout=120, limits=limits) as client:
            health = client.get(f"{url}/health").json()
            hammer(client, url, photos * 2, 2)  # warm-up
            payloads = [photos[i % 2] for i in range(args.requests)]
            start = time.perf_counter()
            results = hammer(client, url, payloads, args.concurrency)
            wall = time.perf_counter() - start
            bad = [("empty.jpg", b""), ("notes.txt", b"no pixels here"), ("cut.jpg", jpeg[:3000]),
                   ("bomb.png", png_claiming(30_000, 30_000))] * 10
            bad_results = hammer(client, url, bad, args.concurrency)
    finally:
        stop_process(server, timeout=15)

    errors = [status for status, _ in results if status != 200]
    ms = [1000 * seconds for _, seconds in results]
    bad_statuses = sorted({str(s) for s, _ in bad_results})
    bad_ok = all(isinstance(s, int) and 400 <= s < 500 for s, _ in bad_results)
    print(f"server: python -m emolib serve on 127.0.0.1 (uvicorn, detector {health['detector']['name']}); "
          f"{model_note}; ready in {ready:.1f} s")
    print(f"client: httpx, {args.concurrency} concurrent, {platform.machine()}, {os.cpu_count()} CPU(s), "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| requests | concurrency | errors | p50 ms | p90 ms | p99 ms | max ms | throughput req/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(results)} | {args.concurrency} | {len(errors)} | {statistics.median(ms):.0f} | "
          f"{percentile(ms, 90):.0f} | {percentile(ms, 99):.0f} | {max(ms):.0f} | "
          f"{len(results) / wall:.1f} |")
    print(f"\nbad uploads: {len(bad_results)} (empty, text, truncated JPEG, 900 MP bomb header) → "
          f"statuses {', '.join(bad_statuses)}; all 4xx: {'yes' if bad_ok else 'NO'}")
    if errors:
        print(f"errors: {sorted({str(e) for e in errors})}\nserver log:\n{server_log(server)}")
    return 0 if not errors and bad_ok else 1


if __name__ == "__main__":
    sys.exit(main())

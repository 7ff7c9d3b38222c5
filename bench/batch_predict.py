"""Streaming folder prediction: images/s and peak memory for 2,000 and 20,000 images, here and on Ray.

    .venv/bin/python bench/batch_predict.py [--sizes 2000 20000] [--modes local ray1 ray2] [--whole-image]

The images are generated into a temporary folder at run time: FER2013 test faces (48×48, grey)
enlarged to 96×96 or tiled 2×2 into 192×192, and every tenth image one of the two shared portraits
shrunk to 320 px wide (JPEG). Each mode runs ``python -m emolib predict DIR --out OUT.jsonl`` (the
shipped model, YuNet; ``--whole-image``: no detection, each image one face) in a fresh process:
``local`` in that process, ``ray1`` / ``ray2`` with ``--ray ADDRESS --workers 1|2`` on a local Ray
head with 2 CPUs (started once, before). Peak memory is sampled every 0.2 s: the driver's anonymous
memory (``RssAnon``; memory-mapped files are left out) and, on Ray, the sum over the head's processes
(daemons, workers, predictor actors). Memory is *flat* when the 20,000-image peak is within a few
per cent of the 2,000-image one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOLIB_SHARED", REPO.parent / "shared")).resolve()


def make_images(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` images in ``folder`` (made once; reused when already complete)."""
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    faces = sorted((SHARED / "data" / "fer2013" / "test").glob("*/*.jpg"))
    portraits = [cv2.imread(str(p)) for p in sorted((SHARED / "data" / "photos").iterdir())]
    portraits = [cv2.resize(p, (320, int(320 * p.shape[0] / p.shape[1]))) for p in portraits if p is not None]
    for i in range(count):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        if i % 10 == 0:
            cv2.imwrite(str(sub / f"{i:06d}.jpg"), portraits[i // 10 % len(portraits)])
            continue
        picks = [cv2.imread(str(faces[j]), cv2.IMREAD_GRAYSCALE) for j in rng.integers(len(faces), size=4)]
        if i % 2:
            image = cv2.resize(picks[0], (96, 96))
        else:
            image = np.vstack([np.hstack(picks[:2]), np.hstack(picks[2:])])
            image = cv2.resize(image, (192, 192))
        cv2.imwrite(str(sub / f"{i:06d}.png"), image)
    done.touch()
    return folder


def rss_anon_mb(process: psutil.Process) -> float:
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(images: Path, out: Path, ray_address: str | None, workers: int, head_pid: int | None,
        whole_image: bool) -> dict:
    """One ``emolib predict`` process, its wall time and its sampled peak memory."""
    command = [sys.executable, "-m", "emolib", "predict", str(images), "--recursive", "--out", str(out),
               "--json", *(["--whole-image"] if whole_image else [])]
    if ray_address:
        command += ["--ray", ray_address, "--workers", str(workers)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    driver = psutil.Process(process.pid)
    peaks = {"driver": 0.0, "cluster": 0.0}
    head = psutil.Process(head_pid) if head_pid else None

    def sample():
        while process.poll() is None:
            peaks["driver"] = max(peaks["driver"], rss_anon_mb(driver))
            if head is not None:
                try:
                    cluster = sum(rss_anon_mb(p) for p in head.children(recursive=True))
                except psutil.Error:
                    cluster = 0.0
                peaks["cluster"] = max(peaks["cluster"], cluster)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    # the summary is the last JSON line (Ray may print its own lines to stdout as it shuts down)
    lines = output.decode().splitlines()
    summary = json.loads(next(line for line in reversed(lines) if line.startswith("{")))
    return {"seconds": seconds, "images": summary["images"], "errors": summary["errors"],
            "rate": summary["images"] / summary["seconds"], **peaks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--modes", nargs="+", default=["local", "ray1", "ray2"],
                        choices=["local", "ray1", "ray2"])
    parser.add_argument("--whole-image", action="store_true",
                        help="no face detection (each image one face): the streaming loop and the model only")
    parser.add_argument("--work", default=tempfile.gettempdir() + "/emolib-bench-batch")
    args = parser.parse_args()
    work = Path(args.work)
    folders = {n: make_images(work / f"images-{n}", n) for n in args.sizes}
    print(f"# batch prediction{' --whole-image' if args.whole_image else ''}, {platform.node()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print("| images | mode | wall s | images/s | driver peak RssAnon MB | Ray processes peak RssAnon MB |")
    print("|---:|---|---:|---:|---:|---:|")

    def measure(address=None, head_pid=None):
        for n in args.sizes:  # interleaved: each size, then each mode
            for mode in args.modes:
                if (mode == "local") != (address is None):
                    continue
                out = work / f"out-{n}-{mode}.jsonl"
                out.unlink(missing_ok=True)
                result = run(folders[n], out, address, 2 if mode == "ray2" else 1, head_pid, args.whole_image)
                cluster = f"{result['cluster']:.0f}" if address else ""
                print(f"| {n:,} | {mode} | {result['seconds']:.1f} | {result['rate']:.1f} | "
                      f"{result['driver']:.0f} | {cluster} |", flush=True)

    if "local" in args.modes:
        measure()
    if any(mode.startswith("ray") for mode in args.modes):
        from emolib.cluster import local_cluster

        with local_cluster(2, work / "ray-head.log", object_store_mb=1024) as head:
            measure(head.address, head.pid)


if __name__ == "__main__":
    main()

"""Decoding an AffectNet-layout dataset into the cache: rate and anonymous memory (issue 39).

    .venv/bin/python bench/affectnet_decode.py [--rows 2000,20000] [--size 112] [--channels 3]

Generates ``Manually_Annotated_file_lists/training.csv`` over ``Manually_Annotated_Images/`` with the
largest row count: one 320×240 JPEG photo per row, a shared FER+ face pasted at a random box (codes
0-10, so 3/11 of the rows are dropped). For each row count (the first N rows of the file), a fresh
process runs ``load_split("affectnet", ..., size, channels)`` into an empty cache, sampling its own
``RssAnon`` every 10 ms, and prints the decode rate (kept faces per second) and the peak.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from train_memory import PeakSampler  # noqa: E402


def make_dataset(root: Path, rows: int, seed: int = 0) -> None:
    """``rows`` photos and their training.csv (plus an empty validation.csv)."""
    import cv2
    import numpy as np

    from emolib import paths

    faces = sorted((paths.shared_dir() / "data" / "ferplus" / "FER2013Train").glob("*.png"))[:500]
    faces = [cv2.imread(str(p)) for p in faces]
    rng = np.random.default_rng(seed)
    images = root / "Manually_Annotated_Images" / "1"
    images.mkdir(parents=True)
    header = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,"
              "valence,arousal")
    lines = [header]
    background = cv2.resize(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), (320, 240))
    for i in range(rows):
        side = int(rng.integers(60, 200))
        x, y = int(rng.integers(0, 320 - side)), int(rng.integers(0, 240 - side))
        photo = background.copy()
        photo[y:y + side, x:x + side] = cv2.resize(faces[i % len(faces)], (side, side))
        cv2.imwrite(str(images / f"{i:06d}.jpg"), photo)
        lines.append(f"1/{i:06d}.jpg,{x},{y},{side},{side},,{i % 11},{rng.uniform(-1, 1):.3f},"
                     f"{rng.uniform(-1, 1):.3f}")
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir()
    (lists / "training.csv").write_text("\n".join(lines) + "\n")
    (lists / "validation.csv").write_text(header + "\n")


def child(root: str, rows: int, size: int, channels: int, cache: str) -> None:
    """Decode the first ``rows`` rows in this (fresh) process; prints a JSON line."""
    full = Path(root) / "Manually_Annotated_file_lists" / "training.csv"
    subset = Path(cache) / "dataset"
    (subset / "Manually_Annotated_file_lists").mkdir(parents=True)
    (subset / "Manually_Annotated_Images").symlink_to(Path(root) / "Manually_Annotated_Images")
    lines = full.read_text().splitlines()[:rows + 1]
    (subset / "Manually_Annotated_file_lists" / "training.csv").write_text("\n".join(lines) + "\n")
    from emolib import data as D

    sampler = PeakSampler()
    sampler.start()
    started = time.perf_counter()
    split = D.load_split("affectnet", subset, "train", size, channels, cache=Path(cache) / "cache")
    seconds = time.perf_counter() - started
    print("RESULT " + json.dumps({"rows": rows, "faces": len(split), "dropped": split.dropped,
                                  "seconds": seconds, "faces_per_s": len(split) / seconds,
                                  "peak_rss_anon_mb": sampler.stop() / 1024,
                                  "decoded_mb": split.images.nbytes / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="2000,20000")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root, rows, cache = args.child
        return child(root, int(rows), args.size, args.channels, cache)
    counts = [int(n) for n in args.rows.split(",")]
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        make_dataset(Path(work) / "affectnet", max(counts))
        print(f"generated {max(counts)} photos in {time.perf_counter() - started:.0f} s", flush=True)
        results = []
        for rows in counts:
            with tempfile.TemporaryDirectory() as cache:
                out = subprocess.run([sys.executable, __file__, "--size", str(args.size), "--channels",
                                      str(args.channels), "--child", str(Path(work) / "affectnet"), str(rows),
                                      cache], capture_output=True, text=True, check=True)
                line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
                results.append(json.loads(line[7:]))
    print(f"| rows | faces kept | decoded at {args.size} px × {args.channels} | seconds | faces/s "
          "| peak RssAnon |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['rows']:,} | {r['faces']:,} | {r['decoded_mb']:,.0f} MB | {r['seconds']:.1f} "
              f"| {r['faces_per_s']:,.0f} | {r['peak_rss_anon_mb']:,.0f} MB |")


if __name__ == "__main__":
    main()

"""Anonymous memory of training as the dataset grows: it should stay flat (issue #20, item 5).

    .venv/bin/python bench/train_memory.py [--images 600] [--factor 8] [--size 128] [--val-fraction 0.5]

Generates a ``folders`` dataset of N and ``factor``·N JPEG faces (``size``×``size`` RGB, smooth random
blobs, two classes) and, for each, runs two fresh subprocesses:

* **cache build**: ``load_split`` into an empty decode cache (every file decoded, chunk by chunk);
* **train**: ``train.load_data`` from that cache (stratified val carve of ``val_fraction``), then
  ``train.train`` of one epoch of ``simple_cnn`` (batch 64, Adam) and the evaluation of the val split,
  as ``emolib train`` does.

Memory that does not depend on the data size still depends on it below a cap: a decode chunk holds
``min(N, data.DECODE_CHUNK)`` images, an evaluation batch ``min(val, 256)``. The defaults put N above
both (600 images, half of them for val), so the comparison shows what grows with the data.

Each subprocess samples its own ``RssAnon`` (``/proc/self/status``) every 10 ms from a thread and reports
the peak, with ``VmHWM`` (peak RSS: that counts the memory-mapped cache pages, which are file-backed and
which the kernel can drop). The table gives both sizes side by side, the growth, and the goal: growth of
peak RssAnon ≤ 10 % of the added data's decoded size. With ``--repeats`` > 1 the sizes are interleaved
and the lowest peak of each is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in kB (e.g. ``RssAnon``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class PeakSampler(threading.Thread):
    """Samples ``RssAnon`` every ``interval`` seconds until stopped; ``peak_kb`` is the largest seen."""

    def __init__(self, interval: float = 0.01):
        super().__init__(daemon=True)
        self.interval, self.peak_kb, self._stop_event = interval, status_kb("RssAnon"), threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.peak_kb = max(self.peak_kb, status_kb("RssAnon"))
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak_kb = max(self.peak_kb, status_kb("RssAnon"))
        return self.peak_kb


def make_dataset(root: Path, count: int, size: int, seed: int = 0) -> None:
    """``count`` JPEG faces under ``root/train/{happy,sad}/``: blurred random colour blobs."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    for name in ("happy", "sad"):
        (root / "train" / name).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        image = cv2.GaussianBlur(cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR), (5, 5), 0)
        cv2.imwrite(str(root / "train" / ("happy" if i % 2 else "sad") / f"{i:06d}.jpg"), image)


def child(phase: str, root: str, size: int, val_fraction: float) -> None:
    """One measured phase in this (fresh) process; prints a JSON line."""
    sampler = PeakSampler()
    sampler.start()
    started = time.perf_counter()
    if phase == "build":
        from emolib import data as D

        split = D.load_split("folders", root, "train", size, 3)
        faces = len(split)
    else:
        from emolib import train as T

        train_split, val_split, _, info = T.load_data("folders", root, size, 3, val_fraction, test_split=None)
        config = T.TrainConfig(backbone="simple_cnn", epochs=1, batch_size=64, input_size=size, channels=3)
        with tempfile.TemporaryDirectory() as output:
            T.train(config, train_split, val_split, output=output, data_info=info, verbose=0)
        faces = len(train_split) + len(val_split)
    seconds = time.perf_counter() - started
    keras = sys.modules.get("keras")  # imported by the train phase only
    runtime = keras and f"Keras {keras.__version__} on {keras.backend.backend()}"
    print("RESULT " + json.dumps({"keras": runtime, "phase": phase, "faces": faces, "seconds": seconds,
                                  "peak_rss_anon_mb": sampler.stop() / 1024,
                                  "vm_hwm_mb": status_kb("VmHWM") / 1024}))


def measure(phase: str, root: Path, size: int, val_fraction: float, cache: Path) -> dict:
    env = {**os.environ, "EMOLIB_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, __file__, "--child", phase, str(root), "--size", str(size),
                           "--val-fraction", str(val_fraction)],
                          env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{phase} on {root} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=600, help="N, the smaller dataset")
    parser.add_argument("--factor", type=int, default=8, help="the larger dataset has factor·N images")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--val-fraction", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", nargs=2, metavar=("PHASE", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.size, args.val_fraction)
        return 0

    counts = (args.images, args.images * args.factor)
    with tempfile.TemporaryDirectory(prefix="emolib-memory-") as work:
        work = Path(work)
        for count in counts:
            make_dataset(work / f"n{count}", count, args.size)
        results: dict[tuple[str, int], dict] = {}
        for repeat in range(args.repeats):
            for count in counts:  # interleaved: background load hits both sizes alike
                cache = work / f"cache-{count}-{repeat}"
                for phase in ("build", "train"):
                    result = measure(phase, work / f"n{count}", args.size, args.val_fraction, cache)
                    best = results.get((phase, count))
                    if best is None or result["peak_rss_anon_mb"] < best["peak_rss_anon_mb"]:
                        results[(phase, count)] = result
    added_mb = (counts[1] - counts[0]) * args.size * args.size * 3 / 2**20
    runtime = results[("train", counts[0])]["keras"]
    print(f"\nsimple_cnn, {args.size}x{args.size} RGB, batch 64, one epoch, val fraction "
          f"{args.val_fraction}; {runtime}; {os.cpu_count()} CPUs; best of {args.repeats}\n")
    big = f"{args.factor}N"
    print(f"| phase | faces N | faces {big} | peak RssAnon N (MB) | peak RssAnon {big} (MB) | growth (MB) "
          f"| goal ≤ 10 % of +{added_mb:.0f} MB decoded | VmHWM N / {big} (MB) | seconds N / {big} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for phase in ("build", "train"):
        small, large = results[(phase, counts[0])], results[(phase, counts[1])]
        growth = large["peak_rss_anon_mb"] - small["peak_rss_anon_mb"]
        verdict = "met" if growth <= 0.1 * added_mb else "missed"
        print(f"| {'cache build' if phase == 'build' else 'train 1 epoch + val'} | {small['faces']} | "
              f"{large['faces']} | {small['peak_rss_anon_mb']:.0f} | {large['peak_rss_anon_mb']:.0f} | "
              f"{growth:+.0f} ({100 * growth / added_mb:+.1f} %) | {verdict} | "
              f"{small['vm_hwm_mb']:.0f} / {large['vm_hwm_mb']:.0f} | "
              f"{small['seconds']:.0f} / {large['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Anonymous memory of training as the dataset grows: it should stay flat (issues #20 and #33).

    .venv/bin/python bench/train_memory.py [--images 1000] [--factor 6] [--size 160] [--channels 1]
                                           [--phases build,train,command,notebook,ferplus]

Generates a ``folders`` dataset of N and ``factor``·N JPEG faces (``size``×``size``, smooth random
blobs, two classes, ``train/`` and a ``test/`` of a fifth as many) and, for each size, measures in fresh
processes:

* **build**: ``load_split`` into an empty decode cache (every file decoded, chunk by chunk);
* **train**: ``train.load_data`` from that cache (stratified val carve of ``val_fraction``) and
  ``train.train`` of one epoch of ``simple_cnn`` (batch 32), in this process;
* **command**: the whole ``emolib train --dataset folders ... --epochs 1 --batch-size 32`` command, from
  the cache to the model card (best weights, val and test evaluation, report, plots, card);
* **notebook**: ``notebooks/02-simple-cnn.ipynb`` run by papermill on the same data (the kernel and
  papermill together);
* **ferplus**: ``emolib train --dataset ferplus`` (vote targets) on the shared FER+, at most
  N / 8 and factor·N / 8 faces per class, at the same size.

build and train sample their own ``RssAnon`` (``/proc/self/status``) every 10 ms; command, notebook and
ferplus are sampled from outside every 0.2 s, summed over the process and its children. The table gives
the peaks side by side, the growth, and the goal: growth ≤ 10 % of the added data's decoded size. With
``--repeats`` > 1 the sizes are interleaved and the lowest peak of each is kept.
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
    """``count`` JPEG faces under ``root/train/{happy,sad}/`` and ``count // 5`` under ``root/test/``:
    blurred random colour blobs."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    for split, n in (("train", count), ("test", count // 5)):
        for name in ("happy", "sad"):
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
            image = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
            image = cv2.GaussianBlur(image, (5, 5), 0)
            cv2.imwrite(str(root / split / ("happy" if i % 2 else "sad") / f"{i:06d}.jpg"), image)


def child(phase: str, root: str, size: int, channels: int, val_fraction: float) -> None:
    """build or train in this (fresh) process; prints a JSON line."""
    sampler = PeakSampler()
    sampler.start()
    started = time.perf_counter()
    if phase == "build":
        from emolib import data as D

        faces = len(D.load_split("folders", root, "train", size, channels))
    else:
        from emolib import train as T

        train_split, val_split, _, info = T.load_data("folders", root, size, channels, val_fraction,
                                                      test_split=None)
        config = T.TrainConfig(backbone="simple_cnn", epochs=1, batch_size=32, input_size=size,
                               channels=channels)
        with tempfile.TemporaryDirectory() as output:
            T.train(config, train_split, val_split, output=output, data_info=info, verbose=0)
        faces = len(train_split) + len(val_split)
    print("RESULT " + json.dumps({"phase": phase, "faces": faces, "seconds": time.perf_counter() - started,
                                  "peak_rss_anon_mb": sampler.stop() / 1024}))


def tree_rss_anon_kb(process) -> int:
    """``RssAnon`` of ``process`` and its children, in kB (processes that just ended count 0)."""
    import psutil

    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            status = Path(f"/proc/{member.pid}/status").read_text()
        except (OSError, psutil.Error):
            continue
        total += next((int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("RssAnon:")), 0)
    return total


def run_sampled(command: list[str], env: dict, cwd: Path, interval: float = 0.2) -> tuple[float, float]:
    """Run ``command``; return (its process tree's peak RssAnon in MB, seconds). Raises if it fails."""
    import psutil

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
        process, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            peak = max(peak, tree_rss_anon_kb(process))
            time.sleep(interval)
        if proc.returncode:
            log.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed:\n{log.read()[-3000:]}")
    return peak / 1024, time.perf_counter() - started


def measure(phase: str, root: Path, args, cache: Path, work: Path, count: int) -> dict:
    env = {**os.environ, "EMOLIB_CACHE": str(cache), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    shape = ["--input-size", str(args.size), "--channels", str(args.channels)]
    if phase in ("build", "train"):
        done = subprocess.run([sys.executable, __file__, "--child", phase, str(root),
                               "--size", str(args.size), "--channels", str(args.channels),
                               "--val-fraction", str(args.val_fraction)],
                              env=env, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            raise RuntimeError(f"{phase} on {root} failed:\n{done.stderr[-3000:]}")
        return json.loads(lines[-1].removeprefix("RESULT "))
    runs = work / f"runs-{phase}-{count}"
    if phase == "command":
        command = [sys.executable, "-m", "emolib", "train", "--dataset", "folders", "--data", str(root),
                   "--backbone", "simple_cnn", *shape, "--epochs", "1", "--batch-size", "32",
                   "--val-fraction", str(args.val_fraction), "--output", str(runs)]
        faces = count + count // 5
    elif phase == "notebook":
        command = [sys.executable, "-m", "papermill", "--log-level", "WARNING",
                   str(REPO / "notebooks/02-simple-cnn.ipynb"), str(work / f"notebook-{count}.ipynb"),
                   "-p", "dataset", "folders", "-p", "data", str(root), "-p", "input_size", str(args.size),
                   "-p", "channels", str(args.channels), "-p", "epochs", "1", "-p", "batch_size", "32",
                   "-p", "max_per_class", "None", "-p", "run_dir", str(runs)]
        faces = count + count // 5
    else:  # ferplus: vote targets on the real FER+ (its own valid and test splits)
        per_class = count // 8
        command = [sys.executable, "-m", "emolib", "train", "--dataset", "ferplus", "--data",
                   str(Path(os.environ.get("EMOLIB_SHARED", REPO.parent / "shared")) / "data" / "ferplus"),
                   "--backbone", "simple_cnn",
                   *shape, "--epochs", "1", "--batch-size", "32", "--max-per-class", str(per_class),
                   "--val-split", "valid", "--output", str(runs)]
    peak, seconds = run_sampled(command, env, REPO)
    if phase == "ferplus":
        params = json.loads(next(runs.glob("*/params.json")).read_text())["data"]
        faces = params["train"] + params["val"] + params["test"]
    return {"phase": phase, "faces": faces, "seconds": seconds, "peak_rss_anon_mb": peak}


PHASES = {"build": "cache build", "train": "train 1 epoch + val (in process)",
          "command": "`emolib train` command, whole", "notebook": "notebook 02 via papermill, whole",
          "ferplus": "`emolib train --dataset ferplus` (votes), whole"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="N, the smaller dataset")
    parser.add_argument("--factor", type=int, default=6, help="the larger dataset has factor·N images")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated, of " + ", ".join(PHASES))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", nargs=2, metavar=("PHASE", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.size, args.channels, args.val_fraction)
        return 0
    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s) {sorted(unknown)}")

    counts = (args.images, args.images * args.factor)
    with tempfile.TemporaryDirectory(prefix="emolib-memory-") as work:
        work = Path(work)
        for count in counts:
            make_dataset(work / f"n{count}", count, args.size)
        results: dict[tuple[str, int], dict] = {}
        for repeat in range(args.repeats):
            for count in counts:  # interleaved: background load hits both sizes alike
                cache = work / f"cache-{count}-{repeat}"
                for phase in ["build", *[p for p in phases if p != "build"]]:  # build fills the cache first
                    result = measure(phase, work / f"n{count}", args, cache, work, count)
                    best = results.get((phase, count))
                    if best is None or result["peak_rss_anon_mb"] < best["peak_rss_anon_mb"]:
                        results[(phase, count)] = result
    import keras

    big = f"{args.factor}N"
    print(f"\nsimple_cnn, {args.size}x{args.size}x{args.channels}, batch 32, one epoch, val fraction "
          f"{args.val_fraction}; Keras {keras.__version__} on {keras.backend.backend()}; "
          f"{os.cpu_count()} CPUs; best of {args.repeats}\n")
    print(f"| phase | faces N | faces {big} | peak RssAnon N (MB) | peak RssAnon {big} (MB) | growth (MB) "
          f"| added decoded (MB) | goal: growth ≤ 10 % of it | seconds N / {big} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for phase in [p for p in PHASES if p in phases]:
        small, large = results[(phase, counts[0])], results[(phase, counts[1])]
        growth = large["peak_rss_anon_mb"] - small["peak_rss_anon_mb"]
        added_mb = (large["faces"] - small["faces"]) * args.size * args.size * args.channels / 2**20
        verdict = "met" if growth <= 0.1 * added_mb else "missed"
        print(f"| {PHASES[phase]} | {small['faces']} | {large['faces']} | {small['peak_rss_anon_mb']:.0f} | "
              f"{large['peak_rss_anon_mb']:.0f} | {growth:+.0f} ({100 * growth / added_mb:+.1f} %) | "
              f"{added_mb:.0f} | {verdict} | {small['seconds']:.0f} / {large['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every hostile file of tests/hostile_files.py through every reader it fits: a markdown table of
clear errors, counted skips, correct reads and crashes (goal: 0 crashes).

A *crash* is anything but what the case is owed: another exception than ``ValueError`` / ``OSError``,
an error whose message does not name the file, a wrong label or timeline, a face lost without being
counted, or (videos) a hang past the time limit. The dataset readers are ``emolib.data.load_split`` on
each layout; the video readers are ``emolib.video.analyze_video`` and the ``emolib video`` command.

Usage (from the repository root)::

    PYTHONPATH=$PWD .venv/bin/python bench/hostile_files.py [--no-cli]
    PYTHONPATH=$PWD .venv/bin/python bench/hostile_files.py --memory   # the 4K chunk's memory

With ``PYTHONPATH`` pointing at another checkout, the same cases run against that checkout's emolib
(e.g. the commit before the fixes).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import hostile_files as H  # noqa: E402

SHARED = Path(os.environ.get("EMOLIB_SHARED", REPO.parent / "shared"))
PHOTO = SHARED / "data" / "photos" / "grace_hopper.jpg"
LIMIT_S = 240  # a video case still running after this is a hang
PASSED = {"error": "clear errors", "skip": "counted skips", "ok": "read correctly"}


def dataset_outcomes() -> list[tuple[str, str, str, str, str]]:
    """``(reader, case, owed, got, detail)`` of every dataset case."""
    rows = []
    for reader, name, write, owed in H.image_cases() + H.table_cases():
        with tempfile.TemporaryDirectory() as folder:
            got, detail = H.run(reader, write, owed, Path(folder) / "ds", Path(folder) / "cache")
        rows.append((reader, name, owed, got, detail))
    return rows


def _in_process(case: H.VideoCase, path: Path, out: Path, predictor) -> tuple[str, str]:
    from emolib import video as V

    stderr = io.StringIO()

    def call():
        with contextlib.redirect_stderr(stderr):
            return V.analyze_video(path, predictor, out=out, progress=False)

    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(call)
    try:
        return H.video_outcome(case, path, out, future.result(timeout=LIMIT_S), stderr=stderr.getvalue())
    except concurrent.futures.TimeoutError:
        return "hang", f"still running after {LIMIT_S} s"
    except BaseException as error:  # noqa: BLE001 - classified, not hidden
        return H.video_outcome(case, path, out, error=error)
    finally:
        pool.shutdown(wait=False)


def _checkout() -> Path:
    """The checkout whose emolib this process imported: `python -m emolib` runs the same one there."""
    import emolib

    return Path(emolib.__file__).resolve().parents[1]


def _command(case: H.VideoCase, path: Path, out: Path) -> tuple[str, str]:
    import pandas as pd

    command = [sys.executable, "-m", "emolib", "video", str(path), "--out", str(out), "--detector", "yunet",
               "--quiet"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=LIMIT_S, cwd=_checkout())
    except subprocess.TimeoutExpired:
        return "hang", f"still running after {LIMIT_S} s"
    if done.returncode == 0:
        return H.video_outcome(case, path, out, pd.read_csv(out), stderr=done.stderr)
    said = [line for line in done.stderr.splitlines() if line.startswith("emolib video: error:")]
    if done.returncode == 2 and said and "Traceback" not in done.stderr:
        return H.video_outcome(case, path, out, error=ValueError(said[-1]))
    return "crash", f"exit {done.returncode}: {done.stderr.strip()[-300:]}"


def video_outcomes(cli: bool) -> list[tuple[str, str, str, str, str]]:
    """``(reader, case, owed, got, detail)`` of every video case, in process and (``cli``) by command."""
    from emolib.predict import EmotionPredictor

    predictor = EmotionPredictor(detector="yunet")
    rows = []
    readers = [("video: analyze_video", lambda case, path, out: _in_process(case, path, out, predictor))]
    if cli:
        readers.append(("video: `emolib video`", _command))
    for reader, read in readers:
        for case in H.VIDEO_CASES:
            with tempfile.TemporaryDirectory() as folder:
                path = case.make(Path(folder), PHOTO)
                got, detail = read(case, path, Path(folder) / "timeline.csv")
            rows.append((reader, case.name, case.outcome, got, detail))
    return rows


def video_memory(folder: Path) -> str:
    """Peak RSS growth of ``analyze_video`` on a 3840x2160 clip of 16 frames (one chunk), model warmed."""
    import resource

    from emolib import video as V
    from emolib.predict import EmotionPredictor

    clip = H.clip(folder / "4k-16.mp4", PHOTO, "3840x2160", 4, 4)
    predictor = EmotionPredictor(detector="yunet")
    predictor.predict(PHOTO)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = V.analyze_video(clip, predictor, progress=False)
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    return f"4K clip, 16 frames: {len(table)} face rows, peak RSS growth {growth:.0f} MB"


def table(rows) -> str:
    """The markdown table: per reader, hostile files, what happened to them."""
    per_reader: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for reader, _, owed, got, _ in rows:
        per_reader[reader]["files"] += 1
        per_reader[reader][PASSED[owed] if got == owed else "crashes"] += 1
    lines = ["| reader | hostile files | clear errors | counted skips | read correctly | crashes |",
             "|---|---|---|---|---|---|"]
    total = collections.Counter()
    for reader, counts in per_reader.items():
        total.update(counts)
        lines.append(f"| {reader} | {counts['files']} | {counts['clear errors']} | {counts['counted skips']} "
                     f"| {counts['read correctly']} | {counts['crashes']} |")
    lines.append(f"| **all** | **{total['files']}** | **{total['clear errors']}** | "
                 f"**{total['counted skips']}** | **{total['read correctly']}** | **{total['crashes']}** |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cli", action="store_true", help="skip the `emolib video` command runs")
    parser.add_argument("--memory", action="store_true",
                        help="only measure analyze_video's peak memory on a 4K clip (a fresh process)")
    args = parser.parse_args()
    import emolib

    if args.memory:
        with tempfile.TemporaryDirectory() as folder:
            print(f"emolib from {Path(emolib.__file__).parent}: {video_memory(Path(folder))}")
        return

    started = time.perf_counter()
    rows = dataset_outcomes() + video_outcomes(cli=not args.no_cli)
    print(f"emolib from {Path(emolib.__file__).parent}; unreadable files: "
          f"{'simulated (running as root)' if os.geteuid() == 0 else 'chmod 000'}; "
          f"{time.perf_counter() - started:.0f} s\n")
    print(table(rows))
    failures = [row for row in rows if row[3] != row[2]]
    if failures:
        print("\nNot as owed:\n")
        for reader, name, owed, got, detail in failures:
            print(f"- {reader}, {name}: owed {owed}, got **{got}**: {detail[:160]}")


if __name__ == "__main__":
    main()

"""Speed of ``emolib video``: sampled frames/s on a generated clip, Keras and ONNX Runtime interleaved.

    .venv/bin/python bench/video_speed.py [--seconds 20] [--rounds 3] [--model emolib-ferplus]

The clip is made here (``emolib.video.make_demo_clip``: the two shared portraits sliding across a
640×480 frame, 10 fps, every frame sampled), so the figure is reproducible without any video file. Each
round times :func:`emolib.video.analyze_video` once per runtime, writing its timeline CSV as the CLI
does (one predictor per runtime, built and warmed up before the first round). Prints a markdown table:
best and median frames/s over the rounds, with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _photos import PHOTOS, photo_path  # noqa: E402

from emolib import video  # noqa: E402
from emolib.predict import EmotionPredictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the generated clip")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="emolib-ferplus")
    parser.add_argument("--runtimes", default="keras,onnx", help="comma-separated, of keras, onnx")
    args = parser.parse_args()
    predictors = {name: EmotionPredictor(model=args.model, runtime=name) for name in args.runtimes.split(",")}
    rates: dict[str, list[float]] = {name: [] for name in predictors}
    with tempfile.TemporaryDirectory() as folder:
        clip = video.make_demo_clip(Path(folder) / "clip.mp4", [photo_path(name) for name in PHOTOS],
                                    seconds=args.seconds)
        loads = [os.getloadavg()[0]]
        for _ in range(args.rounds):
            for name, predictor in predictors.items():
                started = time.perf_counter()
                timeline = video.analyze_video(clip, predictor, out=Path(folder) / f"{name}.csv",
                                               progress=False)
                rates[name].append(timeline["frame"].nunique() / (time.perf_counter() - started))
            loads.append(os.getloadavg()[0])
    print(f"{args.seconds:g} s clip at 10 fps, 640×480, two faces, every frame sampled; model {args.model}; "
          f"{platform.machine()}, {os.cpu_count()} CPUs, load average {min(loads):.1f}–{max(loads):.1f}; "
          f"{args.rounds} interleaved rounds\n")
    print("| runtime | frames/s, best | median |")
    print("|---|---:|---:|")
    for name, values in rates.items():
        print(f"| {name} | {max(values):.1f} | {statistics.median(values):.1f} |")


if __name__ == "__main__":
    main()

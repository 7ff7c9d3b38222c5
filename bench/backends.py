"""What each Keras backend costs here: the same short training in every backend's venv, side by side.

    .venv/bin/python bench/backends.py [--rounds 3] [--steps 20] [--batch-size 64] [--backbones compact_vgg]

For every venv that ``make setup BACKEND=...`` built (``.venv``, ``.venv-jax``, ``.venv-torch``), runs
``bench/gpu_check.py`` (the same model, faces, batch and timed steps after a compiled warm-up) in that
venv's own python, one backend after the other within each round, ``--rounds`` times: load swings on a
shared host then hit every backend alike. Prints a Markdown table of the median and best faces/s of
each backend and what one epoch of FER2013 train (28,709 faces) takes at the median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: venv folder of each backend, as the Makefile names them
VENVS = {"tensorflow": ".venv", "jax": ".venv-jax", "torch": ".venv-torch"}
FER2013_TRAIN = 28_709


def has_backend(name: str) -> bool:
    """Whether the venv of backend ``name`` exists and has the backend's library installed."""
    python = REPO / VENVS[name] / "bin" / "python"
    return python.exists() and subprocess.run(
        [str(python), "-c", f"import importlib.util, sys; sys.exit(not importlib.util.find_spec({name!r}))"],
        capture_output=True).returncode == 0


def run_check(python: Path, args: argparse.Namespace) -> dict:
    """One ``gpu_check.py --json`` run in the venv of ``python``."""
    command = [str(python), str(REPO / "bench" / "gpu_check.py"), "--json", "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
               "--backbones", args.backbones]
    environ = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}  # the venv's own
    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=environ)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{process.stderr[-2000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backbones", default="compact_vgg")
    args = parser.parse_args(argv)

    pythons = {name: REPO / venv / "bin" / "python" for name, venv in VENVS.items() if has_backend(name)}
    print(f"venvs found: {', '.join(f'{name} ({VENVS[name]})' for name in pythons)}", file=sys.stderr)
    speeds: dict[tuple[str, str], list[float]] = {}
    versions: dict[str, str] = {}
    for round_number in range(1, args.rounds + 1):
        for name, python in pythons.items():
            result = run_check(python, args)
            versions[name] = result["backend"]
            for row in result["rows"]:
                speeds.setdefault((row["backbone"], name), []).append(row["faces_per_s"])
                print(f"round {round_number}: {name} {row['backbone']} {row['faces_per_s']} faces/s",
                      file=sys.stderr)

    print(f"{args.rounds} rounds, each backend in turn; per run {args.steps} timed steps of batch "
          f"{args.batch_size} (gray FER2013 train faces, Adam, float32) after {args.warmup} warm-up steps\n")
    print("| backbone | backend | faces/s median | faces/s best | FER2013 train epoch (median) | runs |")
    print("|---|---|---|---|---|---|")
    for (backbone, name), values in speeds.items():
        median = statistics.median(values)
        print(f"| {backbone} | {versions[name]} | {median:.0f} | {max(values):.0f} | "
              f"{FER2013_TRAIN / median:.0f} s | {len(values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

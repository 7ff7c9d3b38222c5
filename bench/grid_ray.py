"""Grid wall time here vs on Ray: a subset of experiments/quick.yaml, run both ways.

    .venv/bin/python bench/grid_ray.py [--cells 3] [--tiny] [--jobs 2]

The first ``--cells`` training runs of the quick grid (02-simple-cnn × 2 backbones, 03-augmentation,
... in the file's order), with the quick grid's own settings (``--tiny``: 10 faces per class and one
epoch instead), run by ``python -m emolib experiments run`` into fresh output folders: once one after the
other here, once as Ray tasks (``--ray ADDRESS --jobs N``) on a local Ray head with 2 CPUs (started
before, not timed). Prints the wall time of each and whether both gave the same run directories.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOLIB_SHARED", REPO.parent / "shared")).resolve()


def subset(cells: int, tiny: bool, path: Path) -> Path:
    """The quick grid cut to its first ``cells`` training runs (expanded one run per experiment)."""
    quick = yaml.safe_load((REPO / "experiments" / "quick.yaml").read_text())
    defaults = {**quick["defaults"], "data": str(SHARED / "data" / "fer2013")}
    if tiny:
        defaults.update(max_per_class=10, epochs=1, batch_size=16)
    experiments = []
    for spec in quick["experiments"]:
        if "02" > Path(spec["notebook"]).stem or Path(spec["notebook"]).stem.startswith("06"):
            continue  # the data notebook and the comparison notebook train nothing
        for key, values in (spec.get("grid") or {"": [None]}).items():
            for value in values:
                if len(experiments) < cells:
                    one = {k: v for k, v in spec.items() if k != "grid"}
                    if key:
                        one["parameters"] = {**spec.get("parameters", {}), key: value}
                        one["name"] = f"{Path(spec['notebook']).stem}-{value}"
                    experiments.append(one)
    path.write_text(yaml.safe_dump({"name": "subset", "defaults": defaults, "experiments": experiments}))
    return path


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    from emolib import experiments as X
    from emolib.cluster import local_cluster

    work = Path(tempfile.mkdtemp(prefix="emolib-bench-grid-"))
    grid = subset(args.cells, args.tiny, work / "subset.yaml")
    run = [sys.executable, "-m", "emolib", "experiments", "run", str(grid)]
    local = timed([*run, "--output", str(work / "local")])
    with local_cluster(2, work / "ray-head.log") as head:
        on_ray = timed([*run, "--output", str(work / "ray"), "--ray", head.address, "--jobs", str(args.jobs)])
    outs = [work / where / "subset" for where in ("local", "ray")]
    names = [sorted(p.name for p in out.iterdir() if p.is_dir()) for out in outs]
    finished = [sum(X.is_finished(out / name) for name in names[0]) for out in outs]
    print(f"# grid subset: {args.cells} cells of quick.yaml{' (tiny)' if args.tiny else ''}, "
          f"load {os.getloadavg()[0]:.1f}")
    print("| runner | wall s | finished runs |")
    print("|---|---:|---:|")
    print(f"| local (one after the other) | {local:.0f} | {finished[0]} |")
    print(f"| Ray, 2 CPUs, --jobs {args.jobs} | {on_ray:.0f} | {finished[1]} |")
    print(f"same run directories: {names[0] == names[1]} ({', '.join(names[0])})")


if __name__ == "__main__":
    main()

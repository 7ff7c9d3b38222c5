"""``emolib ensemble RUN_DIR RUN_DIR ... [--output DIR]``: the runs' averaged probabilities, a new run."""

from __future__ import annotations

from emolib import runs
from emolib.runs import ensemble, splits


def run(args) -> int:
    """Reload the first run's data, ensemble the runs, write the new run; print its summary."""
    _, val_split, test_split = splits.load_run_data(args.run_dirs[0])
    target = ensemble.ensemble_runs(args.run_dirs, val_split, test_split, args.output)
    print(f"ensemble of {len(args.run_dirs)} runs, written to {target} (before: the first run)\n"
          f"{runs.derived_run_summary(target)}")
    return 0

"""``emolib adjust RUN_DIR [--output DIR]``: a logit adjustment fitted on a finished run's val split."""

from __future__ import annotations

import json

from emolib import runs
from emolib.runs import adjust, splits


def run(args) -> int:
    """Reload the run's data, fit a logit adjustment, write the new run; print its summary."""
    _, val_split, test_split = splits.load_run_data(args.run_dir)
    target = adjust.adjust_run(args.run_dir, val_split, test_split, args.output)
    tau = json.loads((target / "metrics.json").read_text())["logit_adjustment"]["tau"]
    print(f"tau {tau:.2f} (fitted on val), written to {target}\n{runs.derived_run_summary(target)}")
    return 0

"""``emolib average RUN_DIR --last N`` (one run's last N epochs) or ``emolib average RUN_DIR RUN_DIR ...``
(the runs' models, a soup): a new run of averaged weights."""

from __future__ import annotations

from emolib import runs
from emolib.runs import average, splits


def run(args) -> int:
    """Reload the first run's data, average, write the new run; print its summary."""
    if (len(args.run_dirs) == 1) != (args.last is not None):
        raise ValueError("give one run and --last N (average its last N epochs), or several runs without "
                         "--last (average their models)")
    train_split, val_split, test_split = splits.load_run_data(args.run_dirs[0])
    if args.last is not None:
        target = average.average_run(args.run_dirs[0], args.last, train_split, val_split, test_split,
                                     args.output)
        print(f"averaged the last {args.last} epochs, written to {target}")
    else:
        target = average.soup_runs(args.run_dirs, train_split, val_split, test_split, args.output)
        print(f"averaged the models of {len(args.run_dirs)} runs, written to {target} "
              "(before: the first run)")
    print(runs.derived_run_summary(target))
    return 0

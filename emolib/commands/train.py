"""``emolib train --dataset NAME --data DIR [TrainConfig flags] ...``: train, write a run directory
(``--resume RUN_DIR`` finishes a killed run)."""

from __future__ import annotations

import json

from emolib import evaluate, models, train
from emolib.commands.parser import config_from_arguments, format_options
from emolib.runs import splits


def run(args) -> int:
    """Train from the command line; print the run directory and its scores (``--json``: as JSON)."""
    if args.resume:
        changes = {name: getattr(args, name) for name in getattr(args, "given_config", [])}
        config, record = train.resume_config(args.resume, changes)
    else:
        config = config_from_arguments(args)
        record = {"dataset": args.dataset, "root": args.data, "val_fraction": args.val_fraction,
                  "max_per_class": args.max_per_class, "val_split": args.val_split,
                  "seed": config.seed if args.split_seed is None else args.split_seed,
                  "options": format_options(args)}
    backbone = models.get_backbone(config.backbone)
    train_split, val_split, test_split, info = splits.load_recorded_data(
        record, config.input_size or backbone.input_size, config.channels or backbone.channels)
    result = train.train(config, train_split, val_split, test_split, output=args.output,
                         name=args.name or config.backbone, run_dir=args.resume, data_info=info, verbose=2)
    scores = result.metrics[result.metrics["evaluated_split"]]
    summary = {"run_dir": str(result.run_dir),
               **{k: scores[k] for k in ("accuracy", "balanced_accuracy", "macro_f1",
                                         *evaluate.AFFECT_DIMENSIONS) if k in scores}}
    line = f"run {result.run_dir}: accuracy {summary['accuracy']:.4f}, macro-F1 {summary['macro_f1']:.4f}"
    for name in evaluate.AFFECT_DIMENSIONS:
        if name in summary and summary[name]["ccc"] is not None:
            line += f", {name} CCC {summary[name]['ccc']:.3f} (RMSE {summary[name]['rmse']:.3f})"
    print(json.dumps(summary, indent=2) if args.json else line)
    return 0

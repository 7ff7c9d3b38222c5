"""``emolib evaluate --model PATH --dataset NAME --data DIR [--split test] [--json]``: a saved model's
metrics on a dataset split."""

from __future__ import annotations

import json

from emolib import data, evaluate, models
from emolib.commands.parser import format_options


def run(args) -> int:
    """Print the metrics (``--json``: the metrics JSON)."""
    loaded = models.load_model(args.model)
    height, _ = loaded.input_size
    split = data.load_split(args.dataset, args.data, args.split, size=height, channels=loaded.channels,
                            **format_options(args))
    result = evaluate.evaluate_split(loaded.model, split, loaded.labels, args.batch_size, args.flip_tta,
                                     (loaded.card.get("uncertain_below") or {}).get("confidence"))
    result.update(model=str(loaded.path), dataset=args.dataset, split=args.split,
                  skipped=len(split.skipped))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.dataset}/{args.split}: accuracy {result['accuracy']:.4f}, balanced "
              f"{result['balanced_accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} "
              f"({result['samples']} images)")
    return 0

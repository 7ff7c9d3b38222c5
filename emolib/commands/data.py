"""``emolib data --dataset NAME --data DIR [--json]``: the dataset summary, per split and class."""

from __future__ import annotations

import json

from emolib import data
from emolib.commands.parser import format_options


def run(args) -> int:
    """Print the dataset summary (``--json``: as one JSON object)."""
    summary = data.summarize(args.dataset, args.data, progress=True, **format_options(args))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for split_name, info in summary["splits"].items():
        counts = ", ".join(f"{k} {v}" for k, v in info["classes"].items())
        print(f"{split_name}: {info['images']} images ({counts}); skipped {info['skipped']['count']}")
        for path, reason in zip(info["skipped"]["first"], info["skipped"]["reasons"]):
            print(f"  skipped: {path}: {reason}")
    return 0

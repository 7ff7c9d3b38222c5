"""``emolib export RUN_DIR --to DIR`` (a shippable model directory) or ``emolib export MODEL --format onnx
[--out PATH]`` (its ONNX file, checked against Keras)."""

from __future__ import annotations

import json

from emolib.models import CARD_FILE
from emolib.runs import export


def run(args) -> int:
    """Export; print where to and how it compares."""
    if args.format == "onnx":
        path, check = export.export_onnx(args.source, args.to,
                                         check_count=args.check_faces or export.CHECK_FACES)
        print(f"exported {args.source} to {path}: on {check['faces']} FER2013 test faces, max |Δprob| "
              f"{check['max_abs_diff']:.2e}, argmax agreement {check['argmax_agreement']:.4f}")
        return 0
    if args.to is None:
        raise ValueError("--to DIR: where the model directory goes")
    target = export.export_run(args.source, args.to, args.name, args.training_commands)
    metrics = json.loads((target / CARD_FILE).read_text(encoding="utf-8"))["metrics"]
    scores = [f"{split} accuracy {value['accuracy']:.4f}" for split, value in metrics.items()
              if isinstance(value, dict)]
    print(f"exported {args.source} to {target}: {', '.join(scores)}")
    return 0

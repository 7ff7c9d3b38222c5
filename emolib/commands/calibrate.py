"""``emolib calibrate RUN|MODEL [--target-precision P] [--data DIR] [--output DIR]``: a temperature and
the "not sure" threshold, fitted on the val split."""

from __future__ import annotations

import json

from emolib import runs
from emolib.runs import calibrate


def run(args) -> int:
    """Reload the val and test splits, fit a temperature, write the result; print what changed."""
    source = calibrate.model_directory(args.model)
    val_split, test_split = calibrate.recorded_splits(source, args.data)
    target = calibrate.calibrate_model(source, val_split, test_split, args.output, args.target_precision)
    metrics = json.loads((target / "metrics.json").read_text())
    calibration = metrics["calibration"]
    kept = ("kept" if calibration["temperature"] != 1.0
            else f"not kept: val ECE gain < {calibrate.MIN_ECE_GAIN}")
    print(f"temperature {calibration['fitted']:.3f} fitted on val ({kept}), written to {target}")
    for split, ece in calibration["ece_before"].items():
        print(f"  {split:4s} ECE {ece:.4f} -> {metrics[split]['ece']:.4f}, "
              f"accuracy {metrics[split]['accuracy']:.4f}")
    card = json.loads((target / runs.CARD_FILE).read_text())
    threshold = card["uncertain_below"]
    print(f"  not sure below {threshold['confidence']:.1f} % confidence: on val, {threshold['coverage']:.1%} "
          f"of the answers kept, {threshold['accuracy']:.1%} of them right")
    if "onnx" in card:  # made from the model replaced now: the onnx runtime refuses it until re-exported
        print(f"  its model.onnx is out of date: python -m emolib export {target} --format onnx")
    return 0

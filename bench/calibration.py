"""Calibration of the shipped models on their own test split and across datasets, and what the "not sure"
threshold keeps.

    .venv/bin/python bench/calibration.py [--models emolib-fer2013 emolib-ferplus] [--temperature-scan]

For each model and test split (FER2013 test, FER+ test; across datasets only the shared classes are
scored, probabilities renormalised over them): accuracy, ECE (15 bins), NLL, Brier, and at the model
card's ``uncertain_below`` threshold the share of answers kept and their accuracy. The models are scored
as shipped (after ``emolib calibrate``); "ECE before" is the card's record of the uncalibrated model on
its own test split. ``--temperature-scan`` adds, per model, the ECE of its own val and test splits at
each temperature of :data:`SCAN` (where the best temperature of each split lies).
"""

from __future__ import annotations

import argparse

import numpy as np

from emolib import data, models
from emolib.evaluate import calibration_metrics, evaluate_split, predict_proba
from emolib.experiments.paths import data_root
from emolib.runs.calibrate import model_directory, recorded_splits, scale_probabilities

TEST_SPLITS = ("fer2013", "ferplus")
#: temperatures of ``--temperature-scan``, applied to the shipped model's probabilities
SCAN = tuple(np.round(np.arange(0.9, 1.101, 0.025), 3))


def temperature_scan(name: str) -> str:
    """Markdown table: ECE of model ``name``'s own val and test splits at each temperature of SCAN."""
    loaded = models.load_model(name)
    val_split, test_split = recorded_splits(model_directory(name))
    rows = []
    for split_name, split in (("val", val_split), ("test", test_split)):
        probs = predict_proba(loaded.model, split.images)
        cells = [calibration_metrics(scale_probabilities(probs, t), split.labels)["ece"] for t in SCAN]
        rows.append(f"| {name} {split_name} ECE | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
    return "\n".join([f"| temperature | {' | '.join(f'{t:.3f}' for t in SCAN)} |",
                      "|---|" + "---|" * len(SCAN), *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["emolib-fer2013", "emolib-ferplus"])
    parser.add_argument("--temperature-scan", action="store_true")
    args = parser.parse_args()
    print("| model | test split | faces | accuracy | ECE | NLL | Brier | not sure below | kept "
          "| accuracy of kept |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        loaded = models.load_model(name)
        threshold = loaded.card["uncertain_below"]["confidence"]
        for dataset in TEST_SPLITS:
            size = loaded.input_size[0]
            split = data.load_split(dataset, data_root(dataset), "test", size, loaded.channels)
            m = evaluate_split(loaded.model, split, loaded.labels, uncertain_below=threshold)
            own = dataset == loaded.card["training_data"]["dataset"]
            where = f"{dataset} test" + ("" if own else " (across)")
            print(f"| {name} | {where} | {m['samples']:,} | {m['accuracy']:.4f} "
                  f"| {m['ece']:.4f} | {m['nll']:.4f} | {m['brier']:.4f} | {threshold:.1f} % "
                  f"| {m['kept']['coverage']:.1%} | {m['kept']['accuracy']:.1%} |")
        calibration = loaded.card["calibration"]
        print(f"| {name}: temperature {calibration['temperature']} (fitted {calibration['fitted']}), "
              "own test "
              f"ECE before {calibration['ece_before']['test']:.4f} | | | | | | | | | |")
    if args.temperature_scan:
        for name in args.models:
            print()
            print(temperature_scan(name))


if __name__ == "__main__":
    main()

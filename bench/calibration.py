"""Calibration of the shipped models on their own test split and across datasets, and what the "not sure"
threshold keeps.

    .venv/bin/python bench/calibration.py [--models emolib-fer2013 emolib-ferplus]

For each model and test split (FER2013 test, FER+ test; across datasets only the shared classes are
scored, probabilities renormalised over them): accuracy, ECE (15 bins), NLL, Brier, and at the model
card's ``uncertain_below`` threshold the share of answers kept and their accuracy. The models are scored
as shipped (after ``emolib calibrate``); "ECE before" is the card's record of the uncalibrated model on
its own test split.
"""

from __future__ import annotations

import argparse

from emolib import data, models
from emolib.evaluate import evaluate_split
from emolib.experiments.paths import data_root

TEST_SPLITS = ("fer2013", "ferplus")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["emolib-fer2013", "emolib-ferplus"])
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


if __name__ == "__main__":
    main()

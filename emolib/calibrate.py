"""Post-hoc logit adjustment of a finished run, fitted on its validation split (never on test)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from emolib import data as D
from emolib import evaluate as E
from emolib import models as M
from emolib import train as T

#: The adjustment strengths tried; 0 (no change) wins ties, so a run that gains nothing is unchanged.
TAUS = tuple(np.round(np.arange(0.0, 2.0001, 0.05), 2))


def adjustment_bias(prior, tau: float) -> np.ndarray:
    """Per-class bias ``−τ · log(prior)`` added to the log-probabilities."""
    return -tau * np.log(np.asarray(prior, dtype=np.float64))


def adjusted_predictions(probs: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Class indices after adding ``bias`` to ``log(probs)``."""
    return np.argmax(np.log(np.maximum(probs, 1e-7)) + bias, axis=1)


def fit_tau(probs: np.ndarray, labels: np.ndarray, prior, taus=TAUS) -> float:
    """The ``τ`` whose adjusted predictions have the highest macro-F1 on ``(probs, labels)``."""
    from sklearn.metrics import f1_score

    scores = [f1_score(labels, adjusted_predictions(probs, adjustment_bias(prior, tau)), average="macro",
                       labels=np.unique(labels), zero_division=0) for tau in taus]
    return float(taus[int(np.argmax(scores))])  # argmax takes the first best: the smallest tau


def _finished_card(run_dir: Path) -> dict:
    if not T.is_complete(run_dir):
        raise ValueError(f"{run_dir} is not a finished run (no {M.CARD_FILE}): finish it with --resume first")
    return json.loads((run_dir / M.CARD_FILE).read_text())


def calibrate_run(run_dir: str | os.PathLike, val_split: D.Split, test_split: D.Split | None = None,
                  output: str | os.PathLike | None = None) -> Path:
    """Fit a logit adjustment on ``val_split`` and write ``run_dir``'s adjusted model as a new run.

    ``val_split`` and ``test_split`` are the run's own (as :func:`emolib.train.train` got them); the
    prior is the run's training class frequencies (from its params.json). The new run directory
    (beside the old one unless ``output`` is given) holds the adjusted model, its metrics on val and
    test, the old params and history, and a card whose ``logit_adjustment`` says what was fitted.
    The old run is not touched.
    """
    run_dir = Path(run_dir)
    card = _finished_card(run_dir)
    params = json.loads((run_dir / "params.json").read_text())
    if "logit_adjustment" in card:
        raise ValueError(f"{run_dir} is already logit-adjusted: calibrate the run it came from")
    info, classes = params["data"], params["classes"]
    recorded = info.get("val_fingerprint")  # runs recorded before it existed: check size and classes
    if (len(val_split) != info["val"] or list(val_split.classes) != classes
            or recorded not in (None, val_split.content_fingerprint())):
        raise ValueError(f"this validation split ({len(val_split)} faces) is not the one {run_dir.name} "
                         f"was trained with ({info['val']} faces of {classes})")
    model = M.load_model(run_dir).model
    counts = np.array([info["train_class_counts"].get(name, 0) for name in classes], dtype=np.float64)
    prior = np.maximum(counts, 1) / np.maximum(counts, 1).sum()  # a class with no training face: not log(0)
    tau = fit_tau(E.predict_proba(model, val_split.images), val_split.labels, prior)
    bias = adjustment_bias(prior, tau)

    run_name = re.sub(r"^\d{8}-\d{6}-", "", run_dir.name)  # new_run_dir adds a fresh timestamp
    target = T.new_run_dir(output or run_dir.parent, f"{run_name}-adjusted")
    shutil.copyfile(run_dir / "params.json", target / "params.json")
    shutil.copyfile(run_dir / "history.csv", target / "history.csv")
    history = json.loads((run_dir / T.CHECKPOINT_DIR / "state.json").read_text())["history"]
    old_metrics = json.loads((run_dir / "metrics.json").read_text())
    adjustment = {"tau": tau, "prior": prior.round(6).tolist(), "bias": bias.round(6).tolist(),
                  "fitted_on": "val", "objective": "macro_f1", "source_run": run_dir.name}
    kept = {key: card[key] for key in ("training_data", "config", "wall_time_s", "peak_memory_mb",
                                       "epochs_run", "best_epoch") if key in card}
    T.write_results(target, M.with_logit_adjustment(model, bias), card["backbone"], classes, val_split,
                    test_split, history, card_fields={**kept, "logit_adjustment": adjustment},
                    best_epoch=old_metrics.get("best_epoch"), epochs_run=old_metrics.get("epochs_run"),
                    logit_adjustment=adjustment, before_adjustment={
                        split: {k: old_metrics[split][k] for k in ("accuracy", "balanced_accuracy",
                                                                   "macro_f1")}
                        for split in ("val", "test") if split in old_metrics})
    return target


def run_cli(args) -> int:
    """``emolib calibrate RUN_DIR``: reload the run's data, fit a logit adjustment, write the new run."""
    card = _finished_card(Path(args.run_dir))
    info = json.loads((Path(args.run_dir) / "params.json").read_text())["data"]
    _, val_split, test_split, _ = T.load_recorded_data(info, card["input_size"][0], card["channels"])
    target = calibrate_run(args.run_dir, val_split, test_split, args.output)
    metrics = json.loads((target / "metrics.json").read_text())
    print(f"tau {metrics['logit_adjustment']['tau']:.2f} (fitted on val), written to {target}")
    for split, before in metrics["before_adjustment"].items():
        after = metrics[split]
        print(f"  {split:4s} accuracy {before['accuracy']:.4f} -> {after['accuracy']:.4f}, "
              f"macro-F1 {before['macro_f1']:.4f} -> {after['macro_f1']:.4f}")
    return 0

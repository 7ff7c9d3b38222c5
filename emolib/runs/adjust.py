"""Post-hoc logit adjustment of a finished run, fitted on its validation split (never on test)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emolib import data as D
from emolib import evaluate as E
from emolib import models as M
from emolib import runs

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


def adjust_run(run_dir: str | os.PathLike, val_split: D.Split, test_split: D.Split | None = None,
                  output: str | os.PathLike | None = None) -> Path:
    """Fit a logit adjustment on ``val_split`` and write ``run_dir``'s adjusted model as a new run.

    ``val_split`` and ``test_split`` are the run's own (as :func:`emolib.train.train` got them); the
    prior is the run's training class frequencies (from its params.json). The new run directory
    ``<name>-adjusted`` (beside the old one unless ``output`` is given) holds the adjusted model, its
    metrics on val and test (the old ones as ``source_metrics``), and a card whose
    ``logit_adjustment`` says what was fitted. The old run is not touched.
    """
    run_dir = Path(run_dir)
    if "logit_adjustment" in runs.finished_card(run_dir):
        raise ValueError(f"{run_dir} is already logit-adjusted: adjust the run it came from")
    runs.check_own_val_split(run_dir, val_split)
    params = runs.run_params(run_dir)
    model = M.load_model(run_dir).model
    counts = np.array([params["data"]["train_class_counts"].get(name, 0) for name in params["classes"]],
                      dtype=np.float64)
    prior = np.maximum(counts, 1) / np.maximum(counts, 1).sum()  # a class with no training face: not log(0)
    tau = fit_tau(E.predict_proba(model, val_split.images), val_split.labels, prior)
    bias = adjustment_bias(prior, tau)
    adjustment = {"tau": tau, "prior": prior.round(6).tolist(), "bias": bias.round(6).tolist(),
                  "fitted_on": "val", "objective": "macro_f1", "source_run": run_dir.name}
    return runs.write_derived_run(run_dir, "adjusted", M.with_logit_adjustment(model, bias), val_split,
                               test_split, output, logit_adjustment=adjustment)

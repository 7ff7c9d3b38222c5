"""Metrics (scikit-learn), confusion matrix and learning curves (seaborn), cross-dataset evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emolib import labels as L


def predict_outputs(model, images: np.ndarray, batch_size: int | None = None,
                    flip_tta: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Class probabilities of ``images`` (n, h, w, c) raw 0..255, and their (n, 2) valence and arousal
    where the model has that output (else None); ``flip_tta`` averages each with the mirror's.

    The images are read batch by batch, at most ``batch_size`` (default 256) faces and at most
    :data:`emolib.data.CHUNK_VALUES` values at a time (:func:`emolib.data.chunk_rows`), so memory holds
    one batch, never the split.
    """
    from tqdm.auto import tqdm

    from emolib.data import chunk_rows
    from emolib.modelcards import split_outputs

    probabilities, valence_arousal = [], []
    rows = chunk_rows(images.shape[1:], batch_size)
    rows = max(1, rows // 2) if flip_tta else rows  # each face goes in twice
    steps = range(0, len(images), rows)
    for start in tqdm(steps, desc="predicting", disable=len(steps) < 20):
        batch = np.asarray(images[start:start + rows], dtype=np.float32)
        if flip_tta:
            batch = np.concatenate([batch, batch[:, :, ::-1]])
        outputs = split_outputs(model.predict_on_batch(batch))
        if flip_tta:
            outputs = tuple(None if out is None else (out[:len(out) // 2] + out[len(out) // 2:]) / 2
                            for out in outputs)
        probabilities.append(outputs[0])
        valence_arousal.append(outputs[1])
    if not probabilities:
        classes = model.outputs[0].shape[-1] if hasattr(model, "outputs") else model.output_shape[-1]
        return np.zeros((0, classes), dtype=np.float32), None
    return (np.concatenate(probabilities),
            None if valence_arousal[0] is None else np.concatenate(valence_arousal))


def predict_proba(model, images: np.ndarray, batch_size: int | None = None,
                  flip_tta: bool = False) -> np.ndarray:
    """Class probabilities of ``images`` (see :func:`predict_outputs`)."""
    return predict_outputs(model, images, batch_size, flip_tta)[0]


#: the two continuous targets of a valence-arousal head, in its output order
AFFECT_DIMENSIONS = ("valence", "arousal")


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict:
    """``rmse``, ``pearson`` and ``ccc`` (Lin's concordance correlation) of predictions, and ``samples``.

    CCC = 2 cov / (var_true + var_pred + (mean_true − mean_pred)²), with population (co)variances: it
    is 1 only when the predictions equal the truth, where Pearson's r is 1 for any increasing line.
    A correlation that is undefined (fewer than 2 values, or constant ones) is None.
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if not len(y_true):
        return {"rmse": None, "pearson": None, "ccc": None, "samples": 0}
    mean_true, mean_pred = y_true.mean(), y_pred.mean()
    var_true, var_pred = y_true.var(), y_pred.var()
    cov = np.mean((y_true - mean_true) * (y_pred - mean_pred))
    pearson = cov / np.sqrt(var_true * var_pred) if var_true > 0 and var_pred > 0 else None
    spread = var_true + var_pred + (mean_true - mean_pred) ** 2
    return {"rmse": float(np.sqrt(np.mean((y_true - y_pred) ** 2))),
            "pearson": None if pearson is None else float(pearson),
            "ccc": float(2 * cov / spread) if spread > 0 and len(y_true) > 1 else None,
            "samples": int(len(y_true))}


def valence_arousal_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """:func:`regression_metrics` of valence and of arousal, each on the faces where it is annotated
    (``y_true`` (n, 2), NaN where not)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    result = {}
    for column, name in enumerate(AFFECT_DIMENSIONS):
        known = np.isfinite(y_true[:, column])
        result[name] = regression_metrics(y_true[known, column], y_pred[known, column])
    return result


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, macro/weighted F1, per-class P/R/F1/support and the confusion matrix."""
    from sklearn import metrics as skm

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    index = list(range(len(classes)))
    if not len(y_true):  # nothing to score (e.g. no shared class in a cross-dataset evaluation)
        zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        return {"accuracy": 0.0, "balanced_accuracy": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0,
                "per_class": {name: dict(zero) for name in classes},
                "confusion": [[0] * len(classes) for _ in classes], "labels": list(classes), "samples": 0}
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=index, zero_division=0)
    present = [i for i in index if support[i] > 0]  # classes absent from y_true don't count in macro F1
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(skm.f1_score(y_true, y_pred, labels=index, average="weighted", zero_division=0)),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(classes)
        },
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=index).tolist(),
        "labels": list(classes),
        "samples": int(len(y_true)),
    }


#: equal-width confidence bins of the reliability diagram and the calibration errors
CALIBRATION_BINS = 15


def calibration_metrics(probs: np.ndarray, y_true: Sequence[int], bins: int = CALIBRATION_BINS) -> dict:
    """How far confidence is from accuracy: ``ece``, ``mce``, ``nll``, ``brier`` and a ``reliability`` table.

    Parameters
    ----------
    probs : array (n, classes)
        Predicted probabilities (rows sum to 1).
    y_true : sequence of int
        True class indices.
    bins : int
        Equal-width bins of the top probability (its confidence); a bin holds (low, high].

    Returns
    -------
    dict
        ``ece`` (expected calibration error: the faces' mean gap between their bin's accuracy and
        confidence), ``mce`` (the largest gap of a non-empty bin), ``nll`` (mean negative
        log-likelihood of the true class), ``brier`` (mean squared distance to the one-hot truth,
        summed over classes: 0..2) and ``reliability`` (per bin: ``confidence``, ``accuracy``, ``count``).
    """
    probs, y_true = np.asarray(probs, dtype=np.float64), np.asarray(y_true, dtype=int)
    count = np.zeros(bins, dtype=int)
    if not len(y_true):
        return {"ece": 0.0, "mce": 0.0, "nll": 0.0, "brier": 0.0, "bins": bins,
                "reliability": {"confidence": [0.0] * bins, "accuracy": [0.0] * bins,
                                "count": count.tolist()}}
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    filled = np.maximum(count, 1)
    mean_confidence = np.bincount(which, confidence, minlength=bins) / filled
    accuracy = np.bincount(which, correct, minlength=bins) / filled
    gap = np.abs(accuracy - mean_confidence)
    truth = np.eye(probs.shape[1])[y_true]
    return {
        "ece": float((count * gap).sum() / len(y_true)),
        "mce": float(gap[count > 0].max()),
        "nll": float(-np.mean(np.log(np.maximum(probs[np.arange(len(y_true)), y_true], 1e-12)))),
        "brier": float(np.mean(((probs - truth) ** 2).sum(axis=1))),
        "bins": bins,
        "reliability": {"confidence": mean_confidence.round(6).tolist(),
                        "accuracy": accuracy.round(6).tolist(),
                        "count": count.tolist()},
    }


def risk_coverage(probs: np.ndarray, y_true: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Answers kept from the most confident down: ``(threshold, coverage, accuracy)`` for each cut.

    Keeping the faces whose confidence is at least ``threshold[k]`` keeps the share ``coverage[k]``,
    right ``accuracy[k]`` of the time.
    """
    probs, y_true = np.asarray(probs, dtype=np.float64), np.asarray(y_true, dtype=int)
    confidence = probs.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    correct = (probs.argmax(axis=1) == y_true)[order]
    kept = np.arange(1, len(order) + 1)
    return confidence[order], kept / max(len(order), 1), np.cumsum(correct) / kept


#: the accuracy that the answers above a model's "not sure" threshold reach on its validation split
TARGET_PRECISION = 0.9


def uncertainty_threshold(probs: np.ndarray, y_true: Sequence[int],
                          target_precision: float = TARGET_PRECISION) -> dict:
    """The "not sure" threshold: the lowest confidence whose answers at or above it are right at least
    ``target_precision`` of the time on ``(probs, y_true)``, so that the most answers are kept.

    Returns ``confidence`` (a percentage, as in results), ``target_precision`` and, on these faces,
    ``coverage`` (the share kept) and ``accuracy`` (of the kept). No cut reaching the target: 100.
    """
    threshold, coverage, accuracy = risk_coverage(probs, y_true)
    reached = np.flatnonzero(accuracy >= target_precision)
    if not len(reached):
        return {"confidence": 100.0, "target_precision": target_precision, "coverage": 0.0, "accuracy": 0.0}
    k = reached[-1]
    return {"confidence": round(float(threshold[k]) * 100.0, 2), "target_precision": target_precision,
            "coverage": round(float(coverage[k]), 4), "accuracy": round(float(accuracy[k]), 4)}


def classification_report(y_true, y_pred, classes: Sequence[str]) -> str:
    """scikit-learn's text report, with class names."""
    from sklearn.metrics import classification_report as report

    return report(y_true, y_pred, labels=list(range(len(classes))), target_names=list(classes),
                  digits=4, zero_division=0)


def evaluate_split(model, split, model_labels: Sequence[str], batch_size: int | None = None,
                   flip_tta: bool = False, uncertain_below: float | None = None) -> dict:
    """Evaluate ``model`` (whose outputs are ``model_labels``) on a decoded :class:`emolib.data.Split`.

    The two label sets may differ (cross-dataset evaluation): only classes both share are scored —
    images of other classes are left out, and predictions are restricted to the shared classes (their
    probabilities renormalised, for the calibration metrics). With ``uncertain_below`` (a model card's
    "not sure" confidence, in %), ``kept`` says which share of the answers is at or above it and how
    accurate those are. A model with a valence-arousal output, on a split that has those values, also
    gets ``valence`` and ``arousal`` (:func:`valence_arousal_metrics`, on the scored faces).
    """
    keep = np.isin(split.labels, sorted(L.label_mapping(split.classes, model_labels)))
    probs, valence_arousal = predict_outputs(model, split.subset(keep).images, batch_size, flip_tta)
    return score_outputs(split, model_labels, probs, valence_arousal, flip_tta, uncertain_below)


def score_outputs(split, model_labels: Sequence[str], probs: np.ndarray,
                  valence_arousal: np.ndarray | None = None, flip_tta: bool = False,
                  uncertain_below: float | None = None) -> dict:
    """:func:`evaluate_split`'s metrics from outputs already predicted (:func:`predict_outputs`) for
    the faces of ``split`` whose class ``model_labels`` shares, in their order."""
    mapping = L.label_mapping(split.classes, model_labels)  # dataset index -> model index
    shared = sorted(mapping)
    keep = np.isin(split.labels, shared)
    if len(probs) != int(keep.sum()):
        raise ValueError(f"{len(probs)} predictions for the {int(keep.sum())} faces of shared classes")
    model_columns = [mapping[i] for i in shared]
    predicted = np.asarray(shared)[np.argmax(probs[:, model_columns], axis=1)] if len(probs) else []
    classes = [split.classes[i] for i in shared]
    remap = {old: new for new, old in enumerate(shared)}
    y_true = [remap[int(v)] for v in split.labels[keep]]
    y_pred = [remap[int(v)] for v in predicted]
    result = compute_metrics(y_true, y_pred, classes)
    shared_probs = probs[:, model_columns] if len(probs) else np.zeros((0, len(shared)))
    shared_probs = shared_probs / np.maximum(shared_probs.sum(axis=1, keepdims=True), 1e-12)
    result.update(calibration_metrics(shared_probs, y_true))  # on the shared classes, renormalised
    if uncertain_below is not None:
        sure = shared_probs.max(axis=1) * 100 >= uncertain_below if len(y_true) else np.zeros(0, bool)
        right = np.asarray(y_pred) == np.asarray(y_true)
        result["kept"] = {"uncertain_below": uncertain_below,
                          "coverage": float(sure.mean()) if len(sure) else 0.0,
                          "accuracy": float(right[sure].mean()) if sure.any() else 0.0}
    if valence_arousal is not None and split.valence_arousal is not None:
        result.update(valence_arousal_metrics(split.valence_arousal[keep], valence_arousal))
    result["left_out"] = int((~keep).sum())
    result["flip_tta"] = flip_tta
    return result


def plot_confusion(confusion, classes: Sequence[str], normalize: bool = True,
                   title: str = "Confusion matrix"):
    """Seaborn heat map of a confusion matrix, rows normalised to recall by default."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    matrix = np.asarray(confusion, dtype=float)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sns.heatmap(matrix, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues", xticklabels=classes,
                yticklabels=classes, vmin=0, vmax=1 if normalize else None, ax=ax, cbar=False)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_reliability(reliability: dict, title: str = "Reliability"):
    """Reliability diagram of a :func:`calibration_metrics` table: accuracy against confidence per bin,
    the diagonal (perfect calibration) and the share of faces in each bin below."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    count = np.asarray(reliability["count"])
    bins = len(count)
    centres = (np.arange(bins) + 0.5) / bins
    filled = count > 0
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.8, 5.6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.bar(centres[filled], np.asarray(reliability["accuracy"])[filled], width=1 / bins, edgecolor="white",
            color=sns.color_palette()[0], label="accuracy")
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.plot(np.asarray(reliability["confidence"])[filled], np.asarray(reliability["accuracy"])[filled],
             "o", color=sns.color_palette()[3], markersize=4, label="bin mean confidence")
    top.set_ylabel("accuracy")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title)
    bottom.bar(centres, count / max(count.sum(), 1), width=1 / bins, edgecolor="white", color="grey")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("share")
    fig.tight_layout()
    return fig


def plot_curves(history, title: str = "Learning curves"):
    """Loss and accuracy per epoch (train and validation) from a history table or dict of lists."""
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame(history)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for column, style in ((metric, "-"), (f"val_{metric}", "--")):
            if column in table:
                ax.plot(table.get("epoch", table.index) + 1, table[column], style, marker="o",
                        label=column)  # markers: a one-epoch run shows points, not empty axes
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig

"""Temperature scaling of a finished run or a model directory, fitted on its validation split (never on
test): confidence that means what it says, every decision kept, and the "not sure" threshold refitted."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from emolib import data as D
from emolib import evaluate as E
from emolib import models as M
from emolib import runs
from emolib.files import sha256_file, write_json
from emolib.modelcards import find_card
from emolib.runs.splits import load_recorded_data

#: the temperatures searched (log-uniform bounds of the one-dimensional fit)
TEMPERATURE_RANGE = (0.05, 20.0)
#: the least drop of validation ECE for which a fitted temperature is kept (else 1: the model as it was).
#: The ECE of ~3,000 faces varies by about ±0.006 between bootstrap resamples: a smaller gain is noise.
MIN_ECE_GAIN = 0.005


def scale_probabilities(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)``, as :class:`emolib.layers.LogitAdjustment` computes it."""
    logits = np.log(np.maximum(np.asarray(probs, dtype=np.float64), 1e-7)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (Guo et al., 2017)."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, dtype=int)

    def nll(log_temperature: float) -> float:
        scaled = scale_probabilities(probs, float(np.exp(log_temperature)))
        return float(-np.mean(np.log(np.maximum(scaled[np.arange(len(labels)), labels], 1e-12))))

    low, high = np.log(TEMPERATURE_RANGE)
    return float(np.exp(minimize_scalar(nll, bounds=(low, high), method="bounded",
                                        options={"xatol": 1e-4}).x))


def model_directory(model: str | os.PathLike) -> Path:
    """The folder of a finished run, a model directory or a shipped model's name."""
    path = Path(model).expanduser()
    return path if path.is_dir() else find_card(model)[1].parent


def recorded_splits(source: Path, data: str | os.PathLike | None = None) -> tuple[D.Split, D.Split | None]:
    """The validation and test splits ``source`` was made with (its params.json, else its card's
    ``training_data``), read from ``data`` where given, else the recorded folder, else the shared data."""
    from emolib.experiments.paths import data_root

    card = runs.finished_card(source)
    is_run = (source / runs.PARAMS_FILE).is_file()
    record = runs.run_params(source)["data"] if is_run else card.get("training_data")
    if not record:
        raise ValueError(f"{source} records no training data: calibrate needs its validation split")
    root = Path(data) if data else Path(record["root"])
    if not data and not root.exists():
        root = data_root(record["dataset"])
    _, val, test, _ = load_recorded_data({**record, "root": str(root)}, card["input_size"][0],
                                         card["channels"])
    return val, test


def calibrate_model(source: str | os.PathLike, val_split: D.Split, test_split: D.Split | None = None,
                    output: str | os.PathLike | None = None,
                    target_precision: float = E.TARGET_PRECISION) -> Path:
    """Fit a temperature on ``val_split`` and write ``source``'s calibrated model.

    Parameters
    ----------
    source : path or name
        A finished run (the calibrated run ``<name>-calibrated`` goes beside it, or under ``output``)
        or a model directory (written to ``output``, which may be ``source`` itself; default: the
        directory ``<name>-calibrated`` beside it).
    val_split, test_split : Split
        The model's own validation split (checked for a run) and test split (only evaluated).
    target_precision : float
        Accuracy of the answers above the "not sure" threshold, refitted on the calibrated val split.

    Returns
    -------
    Path
        The new run or model directory; its card's ``calibration`` records the temperature fitted, the
        one kept (1 where it lowers val ECE by less than :data:`MIN_ECE_GAIN`) and the ECE before.
    """
    source = model_directory(source)
    card = runs.finished_card(source)
    if "calibration" in card:
        raise ValueError(f"{source} is already calibrated: calibrate the model it came from")
    model = M.load_model(source).model
    val_probs = E.predict_proba(model, val_split.images)
    fitted = fit_temperature(val_probs, val_split.labels)
    before = {"val": E.calibration_metrics(val_probs, val_split.labels)["ece"]}
    after = E.calibration_metrics(scale_probabilities(val_probs, fitted), val_split.labels)["ece"]
    gain = before["val"] - after
    temperature = fitted if gain >= MIN_ECE_GAIN else 1.0
    calibrated = M.with_temperature(model, temperature) if temperature != 1.0 else model
    if test_split is not None:
        test_probs = E.predict_proba(model, test_split.images)
        before["test"] = E.calibration_metrics(test_probs, test_split.labels)["ece"]
    calibration = {"temperature": round(temperature, 4), "fitted": round(fitted, 4),
                   "val_ece_gain": round(gain, 4), "min_ece_gain": MIN_ECE_GAIN, "fitted_on": "val",
                   "objective": "nll", "bins": E.CALIBRATION_BINS, "ece_before": before,
                   "source": source.name}
    if (source / runs.PARAMS_FILE).is_file():
        runs.check_own_val_split(source, val_split)
        target = runs.write_derived_run(source, "calibrated", calibrated, val_split, test_split, output,
                                        target_precision=target_precision, calibration=calibration)
    else:
        target = Path(output) if output else source.parent / f"{source.name}-calibrated"
        target = _write_model_directory(source, target, card, calibrated, val_split, test_split,
                                        target_precision, calibration)
    return target


def _write_model_directory(source: Path, target: Path, card: dict, model, val_split, test_split,
                           target_precision: float, calibration: dict) -> Path:
    """A calibrated copy of the model directory ``source`` at ``target`` (which may be ``source``)."""
    import pandas as pd

    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():  # notes and plots not rewritten below come along
        if path.is_file() and target != source and path.suffix in (".md", ".csv"):
            shutil.copy2(path, target / path.name)
    history_file, metrics_file = target / "history.csv", source / "metrics.json"
    history = pd.read_csv(history_file).to_dict("records") if history_file.is_file() else []
    source_metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    made = set(M.make_card(model, backbone=card["backbone"], labels=card["labels"]))
    remade = made | {"name", "metrics", "uncertain_below", "onnx"}
    kept = {key: value for key, value in card.items() if key not in remade}
    if target == source and calibration["temperature"] == 1.0 and "onnx" in card:
        kept["onnx"] = card["onnx"]  # the model is unchanged: its model.onnx still is the model
    runs.write_results(target, model, card["backbone"], card["labels"], val_split, test_split, history,
                       card_fields={**kept, "calibration": calibration}, target_precision=target_precision,
                       calibration=calibration, **{key: source_metrics[key] for key in
                                                   ("best_epoch", "epochs_run", "weight_average",
                                                    "source_metrics") if key in source_metrics})
    if "onnx" in kept:  # re-saved, the same weights: the ONNX file was made from this model.keras too
        card_file = target / runs.CARD_FILE
        written = json.loads(card_file.read_text())
        written["onnx"] = {**written["onnx"], "keras_sha256": sha256_file(target / M.MODEL_FILE)}
        write_json(card_file, written)
    return target

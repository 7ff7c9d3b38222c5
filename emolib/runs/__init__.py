"""The run directory: its format, and reading and writing it (no training here).

A run directory (``results/runs/<timestamp>-<name>/``)::

    params.json        configuration and data description (written first, by emolib.train.train)
    checkpoint/        last.keras + best.weights.h5 + state.json, every epoch (for resume; state.json
                       commits them, see emolib.train.commit_checkpoint);
                       with keep_snapshots, snapshots/epoch-NNN.weights.h5 too (for ``emolib average``)
    history.csv        one row per finished epoch
    metrics.json       validation and test metrics (scikit-learn; calibration: ECE, MCE, NLL, Brier)
    report.txt         classification report of the evaluated split
    curves.png         learning curves;  confusion.png  normalised confusion matrix;
                       reliability.png  reliability diagram of the evaluated split
    model.keras        the best model (by validation accuracy) + model.json, its model card (written last;
                       with the "not sure" threshold chosen on val, ``uncertain_below``)

Every file is written atomically, so an interrupted run never leaves a half file that looks complete.
The transforms of finished runs, each writing a new run, are this package's modules: ``adjust``
(logit adjustment), ``calibrate`` (temperature scaling), ``average``, ``ensemble``; ``export`` makes
a run a model directory. ``splits`` reloads a run's data.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from emolib import data as D
from emolib import evaluate as E
from emolib.files import atomic_path, remove_stale_temporaries, write_atomic, write_json
from emolib.modelcards import CARD_FILE

CHECKPOINT_DIR = "checkpoint"
SNAPSHOT_DIR = "snapshots"  # inside CHECKPOINT_DIR
PARAMS_FILE = "params.json"


@dataclass
class RunResult:
    """What :func:`train` returns."""

    run_dir: Path
    model: object
    metrics: dict
    history: list[dict]


def new_run_dir(output: str | Path, name: str, params: dict | None = None) -> Path:
    """A fresh ``<output>/<timestamp>-<name>`` directory; never reuses an existing one.

    With ``params``, the directory appears with its params.json already whole (made under a temporary
    name, then renamed): a kill never leaves a run directory that is not one.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if params is not None:
        remove_stale_temporaries(output)  # run directories that killed processes were making
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        candidate = output / (f"{stamp}-{name}" + (f"-{attempt}" if attempt else ""))
        try:
            if params is None:
                candidate.mkdir()
                return candidate
            if candidate.exists():
                continue
            with atomic_path(candidate) as tmp:
                tmp.mkdir()
                write_params(tmp, params)
            return candidate
        except (FileExistsError, OSError) as error:
            if isinstance(error, FileExistsError) or candidate.exists():
                continue
            raise
    raise RuntimeError(f"could not create a new run directory in {output}")


def is_complete(run_dir: str | Path) -> bool:
    """True when a run finished (its model card, written last, exists)."""
    return (Path(run_dir) / CARD_FILE).is_file()

def write_params(run_dir: str | Path, params: dict) -> Path:
    """Write a run's params.json (``config``, ``data``, ``classes``); :func:`emolib.train.train` alone
    calls it."""
    return write_json(Path(run_dir) / PARAMS_FILE, params)


def write_history(run_dir: Path, history: list[dict]) -> None:
    """Write a run's history.csv, one row per finished epoch."""
    import pandas as pd

    write_atomic(run_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))


def write_results(run_dir: Path, model, backbone: str, classes, val_split: D.Split,
                  test_split: D.Split | None, history: list[dict], card_fields: dict,
                  target_precision: float = E.TARGET_PRECISION, **metrics_fields) -> dict:
    """Evaluate ``model`` and write a run's result files, each atomically, the model card last.

    metrics.json (val and, when given, test; plus ``metrics_fields``), report.txt, confusion.png and
    reliability.png (the last split evaluated), curves.png (``history``), model.keras and model.json
    (``card_fields`` are added to the card, and ``uncertain_below``: the "not sure" threshold chosen
    on val for ``target_precision``, see :func:`emolib.evaluate.uncertainty_threshold`). A model with a
    valence-arousal head has ``valence`` and ``arousal`` scores (RMSE, Pearson, CCC) in both.
    """
    import matplotlib.pyplot as plt

    from emolib import models as M

    outputs = {"val": E.predict_outputs(model, val_split.images)}  # each split predicted once
    metrics = {"val": E.score_outputs(val_split, classes, *outputs["val"])}
    evaluated = "val"
    if test_split is not None:
        outputs["test"] = E.predict_outputs(model, test_split.images)
        metrics["test"] = E.score_outputs(test_split, classes, *outputs["test"])
        evaluated = "test"
    metrics.update(evaluated_split=evaluated, **metrics_fields)
    final = metrics[evaluated]
    split = test_split if test_split is not None else val_split
    y_pred = np.argmax(outputs[evaluated][0], axis=1)
    write_atomic(run_dir / "report.txt", f"{evaluated} split\n\n" +
                 E.classification_report(split.labels, y_pred, classes))
    for filename, figure in (
        ("curves.png", E.plot_curves(history, title=run_dir.name)),
        ("confusion.png", E.plot_confusion(final["confusion"], classes,
                                           title=f"{run_dir.name} ({evaluated})")),
        ("reliability.png", E.plot_reliability(
            final["reliability"], title=f"{run_dir.name} ({evaluated}, ECE {final['ece']:.3f})")),
    ):
        with atomic_path(run_dir / filename) as tmp:
            figure.savefig(tmp, dpi=110)
        plt.close(figure)
    write_json(run_dir / "metrics.json", metrics)
    threshold = E.uncertainty_threshold(outputs["val"][0], val_split.labels, target_precision)
    card = M.make_card(
        model, backbone=backbone, labels=classes, name=run_dir.name,
        metrics={evaluated: {k: final[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1",
                                                    "ece", "samples", *E.AFFECT_DIMENSIONS) if k in final},
                 "val_accuracy": metrics["val"]["accuracy"], "val_ece": metrics["val"]["ece"]},
        **{"uncertain_below": {**threshold, "fitted_on": "val"}, **card_fields})
    M.save_model(model, run_dir, card)  # model.json last: the run is complete
    return metrics


def finished_card(run_dir: str | Path) -> dict:
    """The model card of a finished run; a clear error for a missing or unfinished one."""
    if not Path(run_dir).is_dir():
        raise ValueError(f"no run directory at {run_dir}")
    if not is_complete(run_dir):
        raise ValueError(f"{run_dir} is not a finished run (no model.json): finish it with --resume first")
    return json.loads((Path(run_dir) / CARD_FILE).read_text(encoding="utf-8"))


def run_params(run_dir: str | Path) -> dict:
    """A run's params.json; a clear error for a folder that is no run directory (an exported model)."""
    path = Path(run_dir) / PARAMS_FILE
    if not path.is_file():
        what = "an exported model, not a run directory" if is_complete(run_dir) else "not a run directory"
        raise ValueError(f"{run_dir} is {what} (no params.json): give a run directory that `emolib train` "
                         "wrote (to train on from a model directory: `emolib train --init-from`)")
    return json.loads(path.read_text())


def check_own_val_split(run_dir: str | Path, val_split: D.Split) -> None:
    """Refuse a validation split other than the one the run was trained with (by size, classes, content)."""
    params = run_params(run_dir)
    info, classes = params["data"], params["classes"]
    recorded = info.get("val_fingerprint")  # runs recorded before it existed: check size and classes
    if (len(val_split) != info["val"] or list(val_split.classes) != classes
            or recorded not in (None, val_split.content_fingerprint())):
        raise ValueError(f"this validation split ({len(val_split)} faces) is not the one "
                         f"{Path(run_dir).name} was trained with ({info['val']} faces of {classes})")


def combinable_cards(run_dirs, val_split: D.Split, action: str) -> list[dict]:
    """The cards of finished runs that may be combined into one model (``action``: "ensemble",
    "average"): none logit-adjusted, all predicting one set of labels, each trained with ``val_split``."""
    cards = [finished_card(run_dir) for run_dir in run_dirs]
    for run_dir, card in zip(run_dirs, cards):
        for field, state, verb in (("logit_adjustment", "logit-adjusted", "adjust"),
                                   ("calibration", "calibrated", "calibrate")):
            if field in card:
                raise ValueError(f"{run_dir} is {state}: {action} the runs it came from, "
                                 f"then {verb} the result")
        if card["labels"] != cards[0]["labels"]:
            raise ValueError(f"{run_dir} predicts {card['labels']}, {run_dirs[0]} {cards[0]['labels']}: "
                             f"runs to {action} must predict the same classes")
        check_own_val_split(run_dir, val_split)
    return cards


def snapshot_files(run_dir: str | Path) -> list[Path]:
    """The per-epoch weight files a run kept (``keep_snapshots``), oldest first."""
    return sorted((Path(run_dir) / CHECKPOINT_DIR / SNAPSHOT_DIR).glob("epoch-*.weights.h5"))


#: card fields a derived run (adjusted, averaged) keeps from the run it came from
_INHERITED_CARD_FIELDS = ("training_data", "config", "placement", "wall_time_s", "peak_memory_mb",
                          "epochs_run", "best_epoch", "weight_average", "logit_adjustment", "ensemble")


def write_derived_run(source_dir: str | Path, suffix: str, model, val_split: D.Split,
                      test_split: D.Split | None = None, output: str | Path | None = None,
                      target_precision: float = E.TARGET_PRECISION, **fields) -> Path:
    """Write ``model``, made from the finished run ``source_dir``, as a new run ``<name>-<suffix>``.

    The new run directory (beside the source unless ``output`` is given) has the source's params
    and history, ``model``'s metrics on val and test with the source's as ``source_metrics``, and a
    card that adds ``fields`` (what was done, e.g. ``logit_adjustment={...}``) to the source card's
    training record. The source run is not touched.
    """
    import pandas as pd

    source_dir = Path(source_dir)
    card = finished_card(source_dir)
    source_metrics = json.loads((source_dir / "metrics.json").read_text())
    run_name = re.sub(r"^\d{8}-\d{6}-", "", source_dir.name)  # new_run_dir adds a fresh timestamp
    target = new_run_dir(output or source_dir.parent, f"{run_name}-{suffix}")
    for name in (PARAMS_FILE, "history.csv"):
        shutil.copyfile(source_dir / name, target / name)
    history = pd.read_csv(target / "history.csv").to_dict("records")
    kept = {key: card[key] for key in _INHERITED_CARD_FIELDS if key in card}
    write_results(target, model, card["backbone"], card["labels"], val_split, test_split, history,
                  card_fields={**kept, **fields}, target_precision=target_precision,
                  best_epoch=source_metrics.get("best_epoch"),
                  epochs_run=source_metrics.get("epochs_run"), **fields, source_metrics={
                      split: {key: source_metrics[split][key] for key in ("accuracy", "balanced_accuracy",
                                                                         "macro_f1")}
                      for split in ("val", "test") if split in source_metrics})
    return target


def evaluate_on(run_dir: str | Path, dataset: str, root: str | Path, split: str = "test") -> dict:
    """Score a finished run's model on another dataset's split and record it in the run's metrics.json.

    The scores go under ``other_datasets["<dataset>/<split>"]``; only the classes the run and the
    dataset share are scored (see :func:`emolib.evaluate.evaluate_split`). Returns them.
    """
    from emolib import models as M

    run_dir = Path(run_dir)
    loaded = M.load_model(run_dir)
    faces = D.load_split(dataset, root, split, size=loaded.input_size[0], channels=loaded.channels)
    scores = E.evaluate_split(loaded.model, faces, loaded.labels)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.setdefault("other_datasets", {})[f"{dataset}/{split}"] = scores
    write_json(run_dir / "metrics.json", metrics)
    return scores


def derived_run_summary(target: Path) -> str:
    """Lines comparing a derived run's val and test metrics with its source run's."""
    metrics = json.loads((Path(target) / "metrics.json").read_text())
    return "\n".join(f"  {split:4s} accuracy {before['accuracy']:.4f} -> {metrics[split]['accuracy']:.4f}, "
                     f"macro-F1 {before['macro_f1']:.4f} -> {metrics[split]['macro_f1']:.4f}"
                     for split, before in metrics["source_metrics"].items())


def load_run(run_dir: str | Path) -> RunResult:
    """A finished run: its model, metrics and history."""
    from emolib import models as M

    run_dir = Path(run_dir)
    loaded = M.load_model(run_dir)
    state = json.loads((run_dir / CHECKPOINT_DIR / "state.json").read_text())
    return RunResult(run_dir, loaded.model, json.loads((run_dir / "metrics.json").read_text()),
                     state["history"])

"""Training: one call fits a model and writes one run directory; a killed run resumes where it stopped.

Run directory (``results/runs/<timestamp>-<name>/``)::

    params.json        configuration and data description (written first)
    checkpoint/        last.keras + best.weights.h5 + state.json, every epoch (for resume);
                       with keep_snapshots, snapshots/epoch-NNN.weights.h5 too (for ``emolib average``)
    history.csv        one row per finished epoch
    metrics.json       validation and test metrics (scikit-learn)
    report.txt         classification report of the evaluated split
    curves.png         learning curves;  confusion.png  normalised confusion matrix
    model.keras        the best model (by validation accuracy) + model.json, its model card (written last)

Every file is written atomically, so an interrupted run never leaves a half file that looks complete.
"""

from __future__ import annotations

import json
import math
import re
import resource
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from emolib import data as D
from emolib import devices as DV
from emolib import evaluate as E
from emolib.files import atomic_path, write_atomic, write_json

CHECKPOINT_DIR = "checkpoint"
SNAPSHOT_DIR = "snapshots"  # inside CHECKPOINT_DIR


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as params.json)."""

    backbone: str = "compact_vgg"
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = 1e-4  # adamw only
    input_size: int | None = None
    channels: int | None = None
    weights: str | None = None
    train_base: bool | int = True
    augment: bool | dict = False
    class_weights: str | dict | None = None  # None | "balanced" | {class index: weight}
    label_smoothing: float = 0.0
    schedule: str = "plateau"  # plateau (ReduceLROnPlateau) | cosine (warm-up + cosine decay)
    warmup_epochs: int = 1
    patience: int = 8
    keep_snapshots: bool = False  # keep every epoch's weights (checkpoint/snapshots/) for weight averaging
    init_from: str | None = None  # a trained model (run or model directory) to start from: fine-tuning
    teacher: str | None = None  # a trained model (e.g. an ensemble run) to distil into this one
    teacher_weight: float = 0.5  # the teacher's share of each target (the label has the rest)
    targets: str = "auto"  # labels | votes (each face's annotator vote distribution) | auto: votes if any
    devices: str | int = field(default=1, metadata={
        "help": "local devices to train on, data-parallel (JAX, TensorFlow): a number or 'all'; "
                "--batch-size is the global batch, split evenly, and --lr applies to it"})
    precision: str = field(default="auto", metadata={
        "help": "dtype policy: auto (float32 on CPU, mixed_bfloat16 on GPUs of compute capability >= 8, "
                "mixed_float16 on 7.x), float32, mixed_float16 or mixed_bfloat16"})
    seed: int = 0
    extra: dict = field(default_factory=dict)  # free-form knobs recorded with the run


@dataclass
class RunResult:
    """What :func:`train` returns."""

    run_dir: Path
    model: object
    metrics: dict
    history: list[dict]


def new_run_dir(output: str | Path, name: str) -> Path:
    """A fresh ``<output>/<timestamp>-<name>`` directory; never reuses an existing one."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        candidate = output / (f"{stamp}-{name}" + (f"-{attempt}" if attempt else ""))
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run directory in {output}")


def is_complete(run_dir: str | Path) -> bool:
    """True when a run finished (its model card, written last, exists)."""
    return (Path(run_dir) / "model.json").is_file()


def _has_epochs_left(state: dict, config: TrainConfig) -> bool:
    """True when a checkpoint state stopped before ``config.epochs`` and early stopping did not end it."""
    return state["epoch"] < config.epochs and not state.get("stopped")


def _extends_finished_run(run_dir: Path, config: TrainConfig) -> bool:
    """True when a finished run's checkpoint has fewer epochs than a new, larger ``config.epochs``."""
    state_file = run_dir / CHECKPOINT_DIR / "state.json"
    return state_file.is_file() and _has_epochs_left(json.loads(state_file.read_text()), config)


def _starts_new_cycle(state: dict, config: TrainConfig, finished: bool) -> bool:
    """True when a finished run trains on to a larger budget: its cosine schedule restarts, so early
    stopping's patience starts over (the best score and weights are kept)."""
    return finished and state.get("budget", state["epoch"]) < config.epochs


def _learning_rate_at(config: TrainConfig, epoch: int) -> float:
    """Linear warm-up then cosine decay to 1 % of the base rate, by epoch."""
    base = config.learning_rate
    if epoch < config.warmup_epochs:
        return base * (epoch + 1) / (config.warmup_epochs + 1)
    progress = (epoch - config.warmup_epochs) / max(1, config.epochs - config.warmup_epochs)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _optimizer(config: TrainConfig):
    import keras

    if config.optimizer == "adam":
        return keras.optimizers.Adam(config.learning_rate)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(config.learning_rate, momentum=0.9, nesterov=True)
    raise ValueError(f"optimizer must be adam, adamw or sgd, not {config.optimizer!r}")


TARGETS = ("auto", "labels", "votes")


def _uses_votes(config: TrainConfig, split: D.Split) -> bool:
    """Whether the training targets are ``split``'s vote distributions (``config.targets``)."""
    if config.targets not in TARGETS:
        raise ValueError(f"targets must be one of {', '.join(TARGETS)}, not {config.targets!r}")
    if config.targets == "votes" and split.soft_labels is None:
        raise ValueError("--targets votes needs a dataset with vote distributions (ferplus)")
    return config.targets == "votes" or (config.targets == "auto" and split.soft_labels is not None)


def _soft_targets(config: TrainConfig, train_split: D.Split) -> bool:
    return bool(config.label_smoothing or config.teacher or _uses_votes(config, train_split))


def _loss(config: TrainConfig, train_split: D.Split):
    import keras

    if _soft_targets(config, train_split):
        return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


def _targets(config: TrainConfig, split: D.Split, train_split: D.Split,
             teacher_probabilities: np.ndarray | None = None) -> np.ndarray:
    """The fit targets of ``split``: class indices, or rows of probabilities.

    A row is the face's one-hot label, or its vote distribution where ``config.targets`` says so (the
    majority label stays the evaluation target), mixed with ``teacher_probabilities`` by
    ``config.teacher_weight``. ``train_split`` decides the kind, so val targets match train's.
    """
    if not _soft_targets(config, train_split):
        return split.labels
    if _uses_votes(config, train_split) and split.soft_labels is not None:
        rows = split.soft_labels.astype(np.float32)
    else:
        rows = np.eye(len(split.classes), dtype=np.float32)[split.labels]
    if teacher_probabilities is None:
        return rows
    weight = config.teacher_weight
    return ((1 - weight) * rows + weight * teacher_probabilities).astype(np.float32)


def _class_weight(config: TrainConfig, labels: np.ndarray, num_classes: int) -> dict | None:
    if config.class_weights in (None, "none"):
        return None
    if config.class_weights == "balanced":
        return D.class_weights(labels, num_classes)
    return {int(k): float(v) for k, v in config.class_weights.items()}


def _resumable(callback_class, state_names: tuple[str, ...]):
    """A subclass of a Keras callback whose counters survive a restart (restored after on_train_begin)."""

    class Resumable(callback_class):
        STATE = state_names

        def __init__(self, *args, state: dict | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self._restored = state or {}

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            for key, value in self._restored.items():
                setattr(self, key, value)

        def state(self) -> dict:
            return {key: _plain(getattr(self, key)) for key in self.STATE}

    Resumable.__name__ = f"Resumable{callback_class.__name__}"
    return Resumable


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _make_checkpoint_callback(run_dir: Path, state: dict, stateful: list, keep_snapshots: bool):
    import keras

    checkpoint = run_dir / CHECKPOINT_DIR

    class RunCheckpoint(keras.callbacks.Callback):
        """After every epoch: history row, best weights, last model with optimizer, counters (atomically);
        with ``keep_snapshots`` also this epoch's weights."""

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: _plain(v) for k, v in (logs or {}).items()}
            row = {"epoch": epoch, **logs, "lr": float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate)), "seconds": time.perf_counter() - self._started}
            state["history"].append(row)
            state["wall_time_s"] += row["seconds"]
            score = logs.get("val_accuracy", -math.inf)
            if score > state["best_val_accuracy"]:
                state["best_val_accuracy"], state["best_epoch"] = score, epoch
                with atomic_path(checkpoint / "best.weights.h5") as tmp:
                    self.model.save_weights(tmp)
            if keep_snapshots:
                with atomic_path(checkpoint / SNAPSHOT_DIR / f"epoch-{epoch + 1:03d}.weights.h5") as tmp:
                    self.model.save_weights(tmp)
            with atomic_path(checkpoint / "last.keras") as tmp:
                self.model.save(tmp)
            state["epoch"] = epoch + 1
            state["stopped"] = bool(self.model.stop_training)  # early stopping decided after this epoch
            state["callbacks"] = [cb.state() for cb in stateful]
            write_json(checkpoint / "state.json", state)
            _write_history(run_dir, state["history"])

    return RunCheckpoint()


def _write_history(run_dir: Path, history: list[dict]) -> None:
    import pandas as pd

    write_atomic(run_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))


def _peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def train(
    config: TrainConfig,
    train_split: D.Split,
    val_split: D.Split,
    test_split: D.Split | None = None,
    output: str | Path = "results/runs",
    name: str | None = None,
    run_dir: str | Path | None = None,
    data_info: dict | None = None,
    callbacks: list | None = None,
    verbose: int | str = "auto",
) -> RunResult:
    """Fit ``config.backbone`` on ``train_split``, select on ``val_split``, evaluate on ``test_split``.

    Parameters
    ----------
    config : TrainConfig
    train_split, val_split, test_split : emolib.data.Split
        Decoded images; the test split is only evaluated, never used for selection.
    output, name : where the new run directory goes and its name (default: the backbone).
    run_dir : path, optional
        An existing run directory: resume it from its last checkpoint. A finished run is returned as
        is, unless ``config.epochs`` is larger than the epochs it ran: then it trains on to the new budget.
    data_info : dict, optional
        Dataset description recorded in params.json and the model card (name, root, fingerprints).
    callbacks : list, optional
        Extra Keras callbacks (they run after the checkpoint, so a failing one loses no epoch).
    """
    import keras

    from emolib import models as M
    from emolib.batches import EpochFollower, FaceBatches

    finished = run_dir is not None and is_complete(run_dir)
    if finished and not _extends_finished_run(Path(run_dir), config):
        return load_run(run_dir)
    state_file = Path(run_dir) / CHECKPOINT_DIR / "state.json" if run_dir is not None else None
    resuming = bool(state_file and state_file.is_file() and (state_file.parent / "last.keras").is_file())
    classes = train_split.classes
    num_classes = len(classes)
    data_info = {**(data_info or {}), "train": len(train_split), "val": len(val_split),
                 "test": len(test_split) if test_split is not None else 0,
                 "train_fingerprint": train_split.content_fingerprint(),
                 "val_fingerprint": val_split.content_fingerprint(),
                 "train_class_counts": D.class_counts(train_split.labels, classes)}

    where = DV.placement(config.devices, config.precision)
    DV.check_batch_size(config.batch_size, where)
    keras.utils.set_random_seed(config.seed + (len(json.loads(state_file.read_text())["history"])
                                               if resuming else 0))
    with DV.scope(where):
        if resuming:
            state = json.loads(state_file.read_text())
            model = keras.saving.load_model(state_file.parent / "last.keras")
            if _starts_new_cycle(state, config, finished) and state["callbacks"]:
                state["callbacks"][0]["wait"] = 0
        else:
            state = {"epoch": 0, "history": [], "wall_time_s": 0.0, "best_val_accuracy": -math.inf,
                     "best_epoch": -1, "callbacks": []}
            model = M.build_model(config.backbone, num_classes, config.input_size, config.channels,
                                  config.weights, config.train_base, config.augment, config.seed)
            if config.init_from:
                _initialise_from(model, config.init_from, val_split, data_info)
            model.compile(optimizer=_optimizer(config), loss=_loss(config, train_split),
                          metrics=["accuracy"])
    image_size, channels = model.input_shape[1], model.input_shape[3]
    for split in (train_split, val_split, test_split):
        if split is not None and split.images.shape[1:] != (image_size, image_size, channels):
            raise ValueError(f"images are {split.images.shape[1:]}, the model takes "
                             f"{(image_size, image_size, channels)}: load the data with that size")

    teacher = (_teacher_probabilities(config, train_split, val_split, data_info)
               if config.teacher and _has_epochs_left(state, config) else None)
    # the run directory is made once the model is ready: a refused configuration leaves nothing behind
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(output, name or config.backbone)
    checkpoint = run_dir / CHECKPOINT_DIR
    if not resuming:
        write_json(run_dir / "params.json", {"config": asdict(config), "data": data_info,
                                             "classes": list(classes), "placement": where.record()})
    state["budget"] = config.epochs
    saved = state["callbacks"] + [{}] * (2 - len(state["callbacks"]))
    early = _resumable(keras.callbacks.EarlyStopping, ("wait", "best", "best_epoch", "stopped_epoch"))(
        monitor="val_accuracy", mode="max", patience=config.patience, state=saved[0])
    if config.schedule == "cosine":
        scheduler = keras.callbacks.LearningRateScheduler(lambda epoch: _learning_rate_at(config, epoch))
        stateful = [early]
    else:
        scheduler = _resumable(keras.callbacks.ReduceLROnPlateau, ("wait", "best", "cooldown_counter"))(
            monitor="val_loss", factor=0.5, patience=max(2, config.patience // 3), min_lr=1e-6,
            state=saved[1])
        stateful = [early, scheduler]
    checkpointer = _make_checkpoint_callback(run_dir, state, stateful, config.keep_snapshots)
    if _has_epochs_left(state, config):
        replicas = len(where.devices)
        # read from the (memory-mapped) images batch by batch; shuffled by the batches, per epoch
        batches = FaceBatches(train_split.images, _targets(config, train_split, train_split, teacher),
                              config.batch_size, seed=config.seed, multiple=replicas,
                              class_weight=_class_weight(config, train_split.labels, num_classes))
        val_batches = FaceBatches(val_split.images, _targets(config, val_split, train_split),
                                  config.batch_size, multiple=replicas)
        with DV.scope(where):
            model.fit(batches, validation_data=val_batches, epochs=config.epochs, shuffle=False,
                      initial_epoch=state["epoch"], verbose=verbose,
                      callbacks=[EpochFollower(batches), scheduler, early, checkpointer, *(callbacks or [])])
    if (checkpoint / "best.weights.h5").is_file():
        model.load_weights(checkpoint / "best.weights.h5")
    if where.distribution is not None:  # evaluated and saved as an ordinary one-device model
        model = M.inference_copy(model)
    return _finish(run_dir, model, config, classes, val_split, test_split, state, data_info, where)


def _load_trained_apart_from_val(source: str | Path, val_split: D.Split, data_info: dict):
    """The trained model at ``source``, refused if trained on this dataset with another validation carve.

    Its training faces would be in this validation split, and selecting on it would flatter the new run.
    """
    from emolib import models as M

    loaded = M.load_model(source)
    trained_on = loaded.card.get("training_data", {})
    if (trained_on.get("dataset") == data_info.get("dataset") and trained_on.get("val_fingerprint")
            and trained_on["val_fingerprint"] != val_split.content_fingerprint()):
        raise ValueError(f"{source} was trained on {trained_on['dataset']} with another validation split: "
                         "its training faces may be in this one. Use the same --seed and --val-fraction")
    return loaded


def _initialise_from(model, source: str | Path, val_split: D.Split, data_info: dict) -> None:
    """Start ``model`` from the weights of the trained model at ``source`` (see ``M.transfer_weights``)."""
    from emolib import models as M

    loaded = _load_trained_apart_from_val(source, val_split, data_info)
    kept = M.transfer_weights(loaded.model, model)
    print(f"initialised from {source}" + (f"; fresh layers: {', '.join(kept)}" if kept else ""))


def _teacher_probabilities(config: TrainConfig, train_split: D.Split, val_split: D.Split,
                           data_info: dict) -> np.ndarray:
    """The class probabilities that ``config.teacher`` gives each (unaugmented) train face."""
    source = config.teacher
    if not 0 < config.teacher_weight <= 1:
        raise ValueError(f"the teacher weight must be in (0, 1], not {config.teacher_weight}")
    loaded = _load_trained_apart_from_val(source, val_split, data_info)
    if list(loaded.card.get("labels", [])) != list(train_split.classes):
        raise ValueError(f"the teacher {source} predicts {loaded.card.get('labels')}, "
                         f"this run {list(train_split.classes)}: a teacher must predict the same classes")
    if tuple(loaded.model.input_shape[1:]) != train_split.images.shape[1:]:
        raise ValueError(f"the teacher {source} takes {tuple(loaded.model.input_shape[1:])} images, "
                         f"this run {train_split.images.shape[1:]}")
    print(f"teacher {source}: predicting the {len(train_split)} train faces")
    return E.predict_proba(loaded.model, train_split.images).astype(np.float32)


def _finish(run_dir, model, config, classes, val_split, test_split, state, data_info,
            where: DV.Placement) -> RunResult:
    metrics = write_results(
        run_dir, model, config.backbone, classes, val_split, test_split, state["history"],
        card_fields=dict(training_data=data_info, config=asdict(config), placement=where.record(),
                         wall_time_s=round(state["wall_time_s"], 1),
                         peak_memory_mb=round(_peak_memory_mb(), 1), epochs_run=len(state["history"]),
                         best_epoch=state["best_epoch"]),
        best_epoch=state["best_epoch"], epochs_run=len(state["history"]))
    return RunResult(run_dir, model, metrics, state["history"])


def write_results(run_dir: Path, model, backbone: str, classes, val_split: D.Split,
                  test_split: D.Split | None, history: list[dict], card_fields: dict,
                  **metrics_fields) -> dict:
    """Evaluate ``model`` and write a run's result files, each atomically, the model card last.

    metrics.json (val and, when given, test; plus ``metrics_fields``), report.txt and confusion.png
    (the last split evaluated), curves.png (``history``), model.keras and model.json (``card_fields``
    are added to the card).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emolib import models as M

    metrics = {"val": E.evaluate_split(model, val_split, classes)}
    evaluated = "val"
    if test_split is not None:
        metrics["test"] = E.evaluate_split(model, test_split, classes)
        evaluated = "test"
    metrics.update(evaluated_split=evaluated, **metrics_fields)
    final = metrics[evaluated]
    split = test_split if test_split is not None else val_split
    y_pred = np.argmax(E.predict_proba(model, split.images), axis=1)
    write_atomic(run_dir / "report.txt", f"{evaluated} split\n\n" +
                 E.classification_report(split.labels, y_pred, classes))
    for filename, figure in (
        ("curves.png", E.plot_curves(history, title=run_dir.name)),
        ("confusion.png", E.plot_confusion(final["confusion"], classes,
                                           title=f"{run_dir.name} ({evaluated})")),
    ):
        with atomic_path(run_dir / filename) as tmp:
            figure.savefig(tmp, dpi=110)
        plt.close(figure)
    write_json(run_dir / "metrics.json", metrics)
    card = M.make_card(
        model, backbone=backbone, labels=classes, name=run_dir.name,
        metrics={evaluated: {k: final[k] for k in ("accuracy", "balanced_accuracy", "macro_f1",
                                                    "weighted_f1", "samples")},
                 "val_accuracy": metrics["val"]["accuracy"]},
        **card_fields)
    M.save_model(model, run_dir, card)  # model.json last: the run is complete
    return metrics


def finished_card(run_dir: str | Path) -> dict:
    """The model card of a finished run; a clear error for a missing or unfinished one."""
    if not Path(run_dir).is_dir():
        raise ValueError(f"no run directory at {run_dir}")
    if not is_complete(run_dir):
        raise ValueError(f"{run_dir} is not a finished run (no model.json): finish it with --resume first")
    return json.loads((Path(run_dir) / "model.json").read_text(encoding="utf-8"))


def run_params(run_dir: str | Path) -> dict:
    """A run's params.json; a clear error for a folder that is no run directory (an exported model)."""
    path = Path(run_dir) / "params.json"
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
        if "logit_adjustment" in card:
            raise ValueError(f"{run_dir} is logit-adjusted: {action} the runs it came from, "
                             "then calibrate the result")
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
                      **fields) -> Path:
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
    for name in ("params.json", "history.csv"):
        shutil.copyfile(source_dir / name, target / name)
    history = pd.read_csv(target / "history.csv").to_dict("records")
    kept = {key: card[key] for key in _INHERITED_CARD_FIELDS if key in card}
    write_results(target, model, card["backbone"], card["labels"], val_split, test_split, history,
                  card_fields={**kept, **fields}, best_epoch=source_metrics.get("best_epoch"),
                  epochs_run=source_metrics.get("epochs_run"), **fields, source_metrics={
                      split: {key: source_metrics[split][key] for key in ("accuracy", "balanced_accuracy",
                                                                         "macro_f1")}
                      for split in ("val", "test") if split in source_metrics})
    return target


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


def load_data(dataset: str, root, input_size: int, channels: int, val_fraction: float = 0.1,
              max_per_class: int | None = None, seed: int = 0, test_split: str | None = "test",
              val_split: str | None = None, **options) -> tuple[D.Split, D.Split, D.Split | None, dict]:
    """Train / validation / test splits and their description.

    The validation split is the dataset's own ``val_split`` (e.g. FER+'s ``valid``) where given, else
    carved from train (stratified, ``val_fraction``, ``seed``). The test split is only evaluated.
    """
    full = D.load_split(dataset, root, "train", input_size, channels, progress=True, **options)
    if val_split:
        train_split = full
        val = D.load_split(dataset, root, val_split, input_size, channels, progress=True, **options)
    else:
        train_split, val = D.train_val_split(full, val_fraction, seed)
    train_split = D.limit_per_class(train_split, max_per_class, seed=seed)
    val = D.limit_per_class(val, max_per_class and max(1, max_per_class // 4), seed=seed)
    test = None
    if test_split:
        test = D.load_split(dataset, root, test_split, input_size, channels, progress=True, **options)
        test = D.limit_per_class(test, max_per_class and max(1, max_per_class // 4), seed=seed)
    info = {"dataset": dataset, "root": str(root), "val_fraction": None if val_split else val_fraction,
            "max_per_class": max_per_class, "seed": seed, "test_split": test_split,
            "skipped": len(full.skipped) + (len(test.skipped) if test is not None else 0)}
    if val_split:
        info["val_split"] = val_split
    return train_split, val, test, info


def load_recorded_data(record: dict, input_size: int, channels: int):
    """:func:`load_data` of a run's ``data`` record (params.json): the same splits, the same val carve."""
    return load_data(record["dataset"], record["root"], input_size, channels, record["val_fraction"],
                     record["max_per_class"], record["seed"], record.get("test_split", "test"),
                     record.get("val_split"))


def load_run_data(run_dir: str | Path):
    """A finished run's train / val / test splits, reloaded as it recorded them, at its model's size."""
    card = finished_card(run_dir)
    record = run_params(run_dir)["data"]
    return load_recorded_data(record, card["input_size"][0], card["channels"])[:3]


def _parse_train_base(text: str) -> bool | int:
    lowered = str(text).lower()
    if lowered in ("true", "all"):
        return True
    if lowered in ("false", "none", "0"):
        return False
    return int(lowered)


def run_cli(args) -> int:
    """``emolib train``: train from the command line (``--resume RUN_DIR`` finishes a killed run)."""
    from emolib import models as M

    if args.resume:
        params = run_params(args.resume)
        if not (Path(args.resume) / CHECKPOINT_DIR).is_dir() and is_complete(args.resume):
            raise ValueError(f"{args.resume} has no training checkpoint (a calibrated, averaged or ensemble "
                             "run?): resume the run it came from, then calibrate, average or ensemble again")
        changes = {}
        if args.epochs and args.epochs != params["config"]["epochs"]:  # a new budget: the cosine follows it
            state_file = Path(args.resume) / CHECKPOINT_DIR / "state.json"
            done = json.loads(state_file.read_text())["epoch"] if state_file.is_file() else 0
            if args.epochs < done:
                raise ValueError(f"{args.resume} has already trained {done} epochs: --epochs must be at "
                                 f"least {done} (nothing was changed)")
            changes["epochs"] = args.epochs
        if args.keep_snapshots and not params["config"].get("keep_snapshots"):  # the epochs to come
            changes["keep_snapshots"] = True
        if args.devices is not None:  # another machine: a checkpoint resumes on any number of devices
            changes["devices"] = args.devices
        if changes:
            params["config"].update(changes)
            write_json(Path(args.resume) / "params.json", params)
        config = TrainConfig(**params["config"])
        record = params["data"]
    else:
        weights = None if args.weights in (None, "None", "none") else args.weights
        config = TrainConfig(
            backbone=args.backbone, epochs=args.epochs or 30, batch_size=args.batch_size,
            learning_rate=args.lr, input_size=args.input_size, channels=args.channels, weights=weights,
            train_base=_parse_train_base(args.train_base), augment=args.augment,
            class_weights=None if args.class_weights == "none" else args.class_weights,
            label_smoothing=args.label_smoothing, schedule=args.schedule, patience=args.patience,
            keep_snapshots=args.keep_snapshots, seed=args.seed, init_from=args.init_from,
            teacher=args.teacher, teacher_weight=args.teacher_weight, targets=args.targets,
            precision=args.precision, **({} if args.devices is None else {"devices": args.devices}),
        )
        record = {"dataset": args.dataset, "root": args.data, "val_fraction": args.val_fraction,
                  "max_per_class": args.max_per_class, "val_split": args.val_split,
                  "seed": args.seed if args.split_seed is None else args.split_seed}
    backbone = M.get_backbone(config.backbone)
    train_split, val_split, test_split, info = load_recorded_data(
        record, config.input_size or backbone.input_size, config.channels or backbone.channels)
    result = train(config, train_split, val_split, test_split, output=args.output,
                   name=args.name or config.backbone, run_dir=args.resume, data_info=info,
                   verbose=2)
    summary = {"run_dir": str(result.run_dir), **{k: result.metrics[result.metrics["evaluated_split"]][k]
                                                    for k in ("accuracy", "balanced_accuracy", "macro_f1")}}
    print(json.dumps(summary, indent=2) if args.json else
          f"run {result.run_dir}: accuracy {summary['accuracy']:.4f}, macro-F1 {summary['macro_f1']:.4f}")
    return 0

"""Training: one call fits a model and writes one run directory; a killed run resumes where it stopped.

The run directory's format (params.json, checkpoint/, history.csv, metrics.json, plots, model and card)
is :mod:`emolib.runs`; :func:`train` is the one writer of a run's params.json.
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from emolib import data as D
from emolib import devices as DV
from emolib import evaluate as E
from emolib import paths, runs
from emolib.files import atomic_path, remove_stale_temporaries, write_json
from emolib.provenance import code_version
from emolib.runs import CHECKPOINT_DIR, SNAPSHOT_DIR, RunResult, is_complete, load_run
from emolib.runs.splits import load_data

__all__ = ["TrainConfig", "RunResult", "train", "load_data", "is_complete"]


def parse_train_base(text: str) -> bool | int:
    """``true``/``all`` → True, ``false``/``none``/``0`` → False, a number → the number of last blocks."""
    lowered = str(text).lower()
    if lowered in ("true", "all"):
        return True
    if lowered in ("false", "none", "0"):
        return False
    if not lowered.isdigit():
        raise ValueError(f"{text!r}: expected true, false or a number of last blocks")
    return int(lowered)


def parse_augmentation(text: str) -> dict:
    """``flip,zoom=0.05`` → ``{"flip": True, "zoom": 0.05}``: switches of ``emolib.layers.Augmentation``."""
    switches = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            switches[name.strip()] = float(value) if value else True
        except ValueError:
            raise ValueError(f"{item!r}: expected NAME or NAME=NUMBER") from None
    return switches


def _optional_text(text: str) -> str | None:
    """A flag's text, ``none``/``None`` meaning None."""
    return None if text.lower() == "none" else text


def _class_weights_option(text: str) -> str | None:
    if text not in ("none", "balanced"):
        raise ValueError(f"{text!r}: expected none or balanced")
    return _optional_text(text)


TARGETS = ("auto", "labels", "votes")
#: what a model predicts: its emotion's probabilities, or also each face's valence and arousal
HEADS = ("expression", "expression+va")


def parse_devices(text: str) -> str | int:
    """``all`` or a positive number of devices (``--devices``)."""
    if str(text).lower() == "all":
        return "all"
    if not str(text).isdigit() or int(text) < 1:
        raise ValueError(f"{text!r}: expected all or a number of devices")
    return int(text)


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as params.json).

    Each field is an ``emolib train`` flag (:func:`emolib.commands.parser.add_config_arguments`):
    ``--<name-with-dashes>`` unless ``metadata["flag"]`` names it, with ``metadata["help"]``; other
    metadata keys are argparse keywords (``type``, ``choices``, ``nargs``…) for values that the
    annotation does not say how to parse (a ``type`` raises ValueError with the flag's message).
    """

    backbone: str = field(default="compact_vgg", metadata={
        "help": "a registered backbone (emolib.models.list_backbones())"})
    epochs: int = field(default=30, metadata={"help": "epoch budget; with --resume: a new epoch budget"})
    batch_size: int = field(default=64, metadata={"help": "faces per training step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "base learning rate", "flag": "--lr"})
    optimizer: str = field(default="adam", metadata={
        "help": "optimizer (sgd: momentum 0.9, Nesterov)", "choices": ("adam", "adamw", "sgd")})
    weight_decay: float = field(default=1e-4, metadata={"help": "decoupled weight decay (adamw only)"})
    input_size: int | None = field(default=None, metadata={
        "help": "face size in pixels (None: the backbone's)"})
    channels: int | None = field(default=None, metadata={
        "help": "1 (grey) or 3 (colour) (None: the backbone's)"})
    weights: str | None = field(default=None, metadata={
        "help": "None, imagenet, or a local weights file", "type": _optional_text})
    train_base: bool | int = field(default=True, metadata={
        "help": "true, false, or the number of last blocks to train", "type": parse_train_base})
    augment: bool | dict = field(default=False, metadata={
        "help": "standard augmentation, or the given switches, e.g. "
                "flip,rotation=0.02,zoom=0.05,translation=0.04,contrast=0.1,erasing=0",
        "nargs": "?", "const": True, "type": parse_augmentation, "metavar": "SWITCHES"})
    class_weights: str | dict | None = field(default=None, metadata={
        "help": "none, or balanced (inverse class frequency); in Python also {class index: weight}",
        "type": _class_weights_option, "metavar": "{none,balanced}"})
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing of the targets"})
    schedule: str = field(default="plateau", metadata={
        "help": "plateau (ReduceLROnPlateau) or cosine (warm-up + cosine decay)",
        "choices": ("plateau", "cosine")})
    warmup_epochs: int = field(default=1, metadata={"help": "linear warm-up epochs of the cosine schedule"})
    patience: int = field(default=8, metadata={"help": "early stopping patience (epochs, on val accuracy)"})
    keep_snapshots: bool = field(default=False, metadata={
        "help": "keep every epoch's weights (checkpoint/snapshots/) for `emolib average`"})
    init_from: str | None = field(default=None, metadata={
        "help": "start from a trained model (run or model directory): fine-tuning", "metavar": "MODEL"})
    teacher: str | None = field(default=None, metadata={
        "help": "distil a trained model (run or model directory, e.g. an `emolib ensemble` run): targets "
                "mix each label with its probabilities of the train face", "metavar": "MODEL"})
    teacher_weight: float = field(default=0.5, metadata={
        "help": "share of the teacher's probabilities in each target"})
    targets: str = field(default="auto", metadata={
        "help": "fit each face's label, or its annotators' vote distribution (auto: votes where the dataset "
                "has them, e.g. ferplus)", "choices": TARGETS})
    heads: str = field(default="expression", metadata={
        "help": "expression: the emotion's probabilities; expression+va: also a valence-arousal head "
                "(2 tanh units), fit on the faces whose dataset annotates them (affectnet)",
        "choices": HEADS})
    va_weight: float = field(default=1.0, metadata={
        "help": "weight of the valence-arousal loss (squared error, 0 on unannotated faces) beside the "
                "expression loss, with --heads expression+va"})
    devices: str | int = field(default=1, metadata={
        "help": "local devices to train on, data-parallel (JAX, TensorFlow): a number or 'all'; "
                "--batch-size is the global batch, split evenly, and --lr applies to it",
        "type": parse_devices, "metavar": "{all,N}"})
    precision: str = field(default="auto", metadata={
        "help": "dtype policy: auto (float32 on CPU, mixed_bfloat16 on GPUs of compute capability >= 8, "
                "mixed_float16 on 7.x), or that policy", "choices": DV.PRECISIONS})
    seed: int = field(default=0, metadata={"help": "seed of the weights, shuffling and augmentation"})

    @classmethod
    def from_record(cls, record: dict) -> TrainConfig:
        """The config of a params.json ``config`` record (fields that no longer exist are dropped)."""
        names = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in names})


def _has_epochs_left(state: dict, config: TrainConfig) -> bool:
    """True when a checkpoint state stopped before ``config.epochs`` and early stopping did not end it."""
    return state["epoch"] < config.epochs and not state.get("stopped")


def _extends_finished_run(run_dir: Path, config: TrainConfig) -> bool:
    """True when a finished run's checkpoint has fewer epochs than a new, larger ``config.epochs``."""
    state_file = run_dir / CHECKPOINT_DIR / "state.json"
    return state_file.is_file() and _has_epochs_left(json.loads(state_file.read_text()), config)


def check_budget(run_dir: str | Path, epochs: int) -> None:
    """Refuse an epoch budget below the epochs ``run_dir`` has already trained."""
    state_file = Path(run_dir) / CHECKPOINT_DIR / "state.json"
    done = json.loads(state_file.read_text())["epoch"] if state_file.is_file() else 0
    if epochs < done:
        raise ValueError(f"{run_dir} has already trained {done} epochs: --epochs must be at least {done} "
                         "(nothing was changed)")



#: the config fields a resume may change: the epoch budget and snapshots (:func:`train` records them in
#: params.json) and the devices (a checkpoint resumes on any number of them)
RESUME_CHANGES = ("epochs", "keep_snapshots", "devices")


def resume_config(run_dir: str | Path, changes: dict) -> tuple[TrainConfig, dict]:
    """The config and the data record (params.json's ``data``) that finish the interrupted run
    ``run_dir``, with ``changes`` to the fields of :data:`RESUME_CHANGES` (others are left as recorded)."""
    params = runs.run_params(run_dir)
    if not (Path(run_dir) / CHECKPOINT_DIR).is_dir() and is_complete(run_dir):
        raise ValueError(f"{run_dir} has no training checkpoint (an adjusted, calibrated, "
                         "averaged or ensemble run?): resume the run it came from, then adjust, "
                         "calibrate, average or ensemble again")
    changes = {name: value for name, value in changes.items() if name in RESUME_CHANGES}
    check_budget(run_dir, changes.get("epochs", params["config"]["epochs"]))
    return TrainConfig.from_record({**params["config"], **changes}), params["data"]

def _record_new_budget(run_dir: Path, config: TrainConfig) -> None:
    """Record in ``run_dir``'s params.json what resuming it may change: a new epoch budget (the cosine
    follows it; never below the epochs done) and ``keep_snapshots`` for the epochs to come."""
    params = runs.run_params(run_dir)
    check_budget(run_dir, config.epochs)
    changes = {"epochs": config.epochs} if config.epochs != params["config"]["epochs"] else {}
    if config.keep_snapshots and not params["config"].get("keep_snapshots"):
        changes["keep_snapshots"] = True
    if changes:
        params["config"].update(changes)
        runs.write_params(run_dir, params)


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


def _uses_valence_arousal(config: TrainConfig, train_split: D.Split) -> bool:
    """Whether the model gets a valence-arousal head (``config.heads``); refused without annotations."""
    if config.heads not in HEADS:
        raise ValueError(f"heads must be one of {', '.join(HEADS)}, not {config.heads!r}")
    if config.heads == "expression":
        return False
    values = train_split.valence_arousal
    if values is None or not np.isfinite(values).any():
        raise ValueError("--heads expression+va needs a dataset with valence and arousal (affectnet): "
                         "this training split has none")
    if config.va_weight <= 0:
        raise ValueError(f"--va-weight must be positive, not {config.va_weight}")
    return True


def _compile(model, config: TrainConfig, train_split: D.Split, valence_arousal: bool) -> None:
    """The optimizer and losses: the expression loss, plus ``va_weight`` × the valence-arousal one."""
    from emolib.models import masked_squared_error

    expression = _loss(config, train_split)
    if not valence_arousal:
        model.compile(optimizer=_optimizer(config), loss=expression, metrics=["accuracy"])
        return
    model.compile(optimizer=_optimizer(config), loss=[expression, masked_squared_error],
                  loss_weights=[1.0, config.va_weight], metrics=[["accuracy"], []])


def _fit_targets(config: TrainConfig, split: D.Split, train_split: D.Split, valence_arousal: bool,
                 teacher_probabilities: np.ndarray | None = None):
    """:func:`_targets`, with the (n, 2) valence and arousal (NaN where unknown) after them for a
    valence-arousal model."""
    targets = _targets(config, split, train_split, teacher_probabilities)
    if not valence_arousal:
        return targets
    values = split.valence_arousal
    return targets, (np.full((len(split), 2), np.nan, np.float32) if values is None
                     else values.astype(np.float32))


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


#: checkpoint files replaced every epoch; each is first written as ``pending-<epoch>-<name>`` and
#: renamed onto its name once state.json records that epoch (state.json is the commit)
_CHECKPOINT_FILES = ("last.keras", "best.weights.h5")


def _pending(checkpoint: Path, epochs: int, name: str) -> Path:
    return checkpoint / f"pending-{epochs:04d}-{name}"


def commit_checkpoint(run_dir: Path, state: dict) -> None:
    """Complete the checkpoint that ``state`` (as in state.json) records: rename its pending files onto
    their names, remove those of an epoch it does not record (a kill before its state.json), and write
    history.csv from the state. Run after each state.json write, and when a run resumes."""
    checkpoint = run_dir / CHECKPOINT_DIR
    remove_stale_temporaries(checkpoint)
    for pending in checkpoint.glob("pending-*-*"):
        epochs, name = pending.name.split("-", 2)[1:]
        if int(epochs) == state["epoch"] and name in _CHECKPOINT_FILES:
            os.replace(pending, checkpoint / name)
        else:
            pending.unlink()
    runs.write_history(run_dir, state["history"])


def _make_checkpoint_callback(run_dir: Path, state: dict, stateful: list, keep_snapshots: bool):
    import keras

    checkpoint = run_dir / CHECKPOINT_DIR

    class RunCheckpoint(keras.callbacks.Callback):
        """After every epoch: history row, best weights, last model with optimizer, counters, committed
        together (see :func:`commit_checkpoint`); with ``keep_snapshots`` also this epoch's weights."""

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
                with atomic_path(_pending(checkpoint, epoch + 1, "best.weights.h5")) as tmp:
                    self.model.save_weights(tmp)
            if keep_snapshots:
                with atomic_path(checkpoint / SNAPSHOT_DIR / f"epoch-{epoch + 1:03d}.weights.h5") as tmp:
                    self.model.save_weights(tmp)
            with atomic_path(_pending(checkpoint, epoch + 1, "last.keras")) as tmp:
                self.model.save(tmp)
            state["epoch"] = epoch + 1
            state["stopped"] = bool(self.model.stop_training)  # early stopping decided after this epoch
            state["callbacks"] = [cb.state() for cb in stateful]
            write_json(checkpoint / "state.json", state)
            commit_checkpoint(run_dir, state)

    return RunCheckpoint()


def _peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def train(
    config: TrainConfig,
    train_split: D.Split,
    val_split: D.Split,
    test_split: D.Split | None = None,
    output: str | Path | None = None,
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
    output, name : where the new run directory goes (default: :func:`emolib.paths.runs_dir`) and its
        name (default: the backbone).
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
    from emolib.fit_batches import EpochFollower, ExpressionLogs, FaceBatches

    if run_dir is not None and (Path(run_dir) / runs.PARAMS_FILE).is_file():
        _record_new_budget(Path(run_dir), config)
    finished = run_dir is not None and is_complete(run_dir)
    if finished and not _extends_finished_run(Path(run_dir), config):
        return load_run(run_dir)
    state_file = Path(run_dir) / CHECKPOINT_DIR / "state.json" if run_dir is not None else None
    if state_file is not None and state_file.is_file():  # a kill may have come between commit and rename
        commit_checkpoint(Path(run_dir), json.loads(state_file.read_text()))
    resuming = bool(state_file and state_file.is_file() and (state_file.parent / "last.keras").is_file())
    classes = train_split.classes
    num_classes = len(classes)
    data_info = {**(data_info or {}), "train": len(train_split), "val": len(val_split),
                 "test": len(test_split) if test_split is not None else 0,
                 "train_fingerprint": train_split.content_fingerprint(),
                 "val_fingerprint": val_split.content_fingerprint(),
                 "train_class_counts": D.class_counts(train_split.labels, classes)}

    valence_arousal = _uses_valence_arousal(config, train_split)
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
                                  config.weights, config.train_base, config.augment, config.seed,
                                  valence_arousal=valence_arousal)
            if config.init_from:
                _initialise_from(model, config.init_from, val_split, data_info)
            _compile(model, config, train_split, valence_arousal)
    image_size, channels = model.input_shape[1], model.input_shape[3]
    for split in (train_split, val_split, test_split):
        if split is not None and split.images.shape[1:] != (image_size, image_size, channels):
            raise ValueError(f"images are {split.images.shape[1:]}, the model takes "
                             f"{(image_size, image_size, channels)}: load the data with that size")

    teacher = (_teacher_probabilities(config, train_split, val_split, data_info)
               if config.teacher and _has_epochs_left(state, config) else None)
    # the run directory is made once the model is ready: a refused configuration leaves nothing behind
    params = {"config": asdict(config), "data": data_info, "classes": list(classes),
              "placement": where.record(), "code_version": code_version()}
    if run_dir is None:
        run_dir = runs.new_run_dir(output or paths.runs_dir(), name or config.backbone, params)
    elif not resuming:
        runs.write_params(run_dir, params)
    run_dir = Path(run_dir)
    checkpoint = run_dir / CHECKPOINT_DIR
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
        batches = FaceBatches(train_split.images,
                              _fit_targets(config, train_split, train_split, valence_arousal, teacher),
                              config.batch_size, seed=config.seed, multiple=replicas,
                              class_weight=_class_weight(config, train_split.labels, num_classes))
        val_batches = FaceBatches(val_split.images,
                                  _fit_targets(config, val_split, train_split, valence_arousal),
                                  config.batch_size, multiple=replicas)
        renamed = [ExpressionLogs()] if valence_arousal else []
        with DV.scope(where):
            model.fit(batches, validation_data=val_batches, epochs=config.epochs, shuffle=False,
                      initial_epoch=state["epoch"], verbose=verbose,
                      callbacks=[EpochFollower(batches), *renamed, scheduler, early, checkpointer,
                                 *(callbacks or [])])
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
    metrics = runs.write_results(
        run_dir, model, config.backbone, classes, val_split, test_split, state["history"],
        card_fields=dict(training_data=data_info, config=asdict(config), placement=where.record(),
                         wall_time_s=round(state["wall_time_s"], 1),
                         peak_memory_mb=round(_peak_memory_mb(), 1), epochs_run=len(state["history"]),
                         best_epoch=state["best_epoch"]),
        best_epoch=state["best_epoch"], epochs_run=len(state["history"]))
    return RunResult(run_dir, model, metrics, state["history"])

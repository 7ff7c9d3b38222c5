"""emolib.train: run directories, metrics that match the saved model, kill/resume, class weights, schedules.

Runs are tiny (a few hundred real FER2013 faces, simple_cnn, 1–3 epochs) so the whole file takes about a
minute on a busy 2-core CPU.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from emolib import data as D
from emolib import evaluate as E
from emolib import labels as L
from emolib import models as M
from emolib import runs
from emolib import train as T
from emolib.runs.splits import load_recorded_data

#: Tests marked `backend` run again on JAX (see the Makefile): those whose numbers go through the backend
#: (a whole run, its model and card, losses, weights moved or averaged, a resumed optimizer). File and
#: process handling (kills, a full disk, run directories, what the CLI prints) is the same code on each.

REPO = Path(__file__).resolve().parents[1]
RUN_FILES = ("params.json", "history.csv", "metrics.json", "report.txt", "curves.png", "confusion.png",
             "reliability.png", "model.keras", "model.json")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """A private decode cache for this module (also handed to the CLI subprocess)."""
    return tmp_path_factory.mktemp("emolib-cache")


@pytest.fixture(scope="module")
def fer_small(fer2013_dir, cache_dir):
    """Train / val / test of real FER2013, at most 30 train faces per class (val and test: 7)."""
    return T.load_data("fer2013", fer2013_dir, 48, 1, max_per_class=30, cache=cache_dir)


def _config(**changes) -> T.TrainConfig:
    return T.TrainConfig(**{"backbone": "simple_cnn", "epochs": 2, "batch_size": 32, "seed": 0, **changes})


def _history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


# ---------------------------------------------------------------------------------------------------
# A complete run directory
# ---------------------------------------------------------------------------------------------------

def test_load_data_small_subset(fer_small):
    train_split, val_split, test_split, info = fer_small
    assert train_split.classes == L.EMOTIONS_7
    assert np.bincount(train_split.labels, minlength=7).tolist() == [30] * 7
    assert np.bincount(val_split.labels, minlength=7).tolist() == [7] * 7
    assert np.bincount(test_split.labels, minlength=7).tolist() == [7] * 7
    assert train_split.images.shape[1:] == (48, 48, 1) and train_split.images.dtype == np.uint8
    assert not set(train_split.sources) & set(val_split.sources), "validation overlaps training"
    assert all("/train/" in s for s in val_split.sources) and all("/test/" in s for s in test_split.sources)
    assert info["dataset"] == "fer2013" and info["max_per_class"] == 30


def test_load_data_fraction_keeps_each_class_share_of_every_split(fer2013_dir, cache_dir):
    """``fraction`` (the notebooks' small subsets) then keeps that share of each class of every split."""
    whole = T.load_data("fer2013", fer2013_dir, 48, 1, max_per_class=400, cache=cache_dir)
    part = T.load_data("fer2013", fer2013_dir, 48, 1, max_per_class=400, fraction=0.1, cache=cache_dir)
    for split, subset in zip(whole[:3], part[:3]):
        expected = [max(1, int(round(n * 0.1))) for n in np.bincount(split.labels, minlength=7)]
        assert np.bincount(subset.labels, minlength=7).tolist() == expected
        assert set(subset.sources) <= set(split.sources)
    assert part[3]["fraction"] == 0.1 and "fraction" not in whole[3]
    # a run's record reloads the same subset (calibrate, logit adjustment and 04b's base_run use it)
    again = load_recorded_data(part[3], 48, 1)
    for subset, reloaded in zip(part[:3], again[:3]):
        assert list(reloaded.sources) == list(subset.sources)


@pytest.fixture(scope="module")
def finished_run(fer_small, tmp_path_factory):
    train_split, val_split, test_split, info = fer_small
    output = tmp_path_factory.mktemp("runs")
    result = T.train(_config(keep_snapshots=True), train_split, val_split, test_split, output=output,
                     name="small", data_info=info, verbose=0)
    return result, test_split


@pytest.mark.backend
def test_run_directory_is_complete(finished_run):
    result, _ = finished_run
    run_dir = result.run_dir
    for name in RUN_FILES:
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, f"{name} missing"
    assert T.is_complete(run_dir)
    assert not [p.name for p in run_dir.rglob(".*")], "temporary files left in the run directory"
    assert [p.name for p in runs.snapshot_files(run_dir)] == ["epoch-001.weights.h5", "epoch-002.weights.h5"]

    params = json.loads((run_dir / "params.json").read_text())
    assert params["config"]["backbone"] == "simple_cnn" and params["config"]["epochs"] == 2
    assert params["classes"] == list(L.EMOTIONS_7)
    assert params["data"]["dataset"] == "fer2013" and params["data"]["train"] == 210

    history = _history(run_dir)
    assert [row["epoch"] for row in history] == [0, 1]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"} <= set(history[0])
    assert len(result.history) == 2

    report = (run_dir / "report.txt").read_text()
    assert report.startswith("test split") and all(name in report for name in L.EMOTIONS_7)


@pytest.mark.backend
def test_model_card_describes_the_run(finished_run, fer_small):
    result, test_split = finished_run
    card = json.loads((result.run_dir / "model.json").read_text())
    assert card["labels"] == list(L.EMOTIONS_7)
    assert card["input_size"] == [48, 48] and card["channels"] == 1
    assert card["backbone"] == "simple_cnn" and card["preprocessing"] == "unit"
    assert card["training_data"]["dataset"] == "fer2013"
    assert card["training_data"]["train_fingerprint"] == fer_small[0].content_fingerprint()
    assert card["training_data"]["val_fingerprint"].startswith("49-")
    assert card["training_data"]["train_class_counts"] == {name: 30 for name in L.EMOTIONS_7}
    assert card["metrics"]["test"]["accuracy"] == result.metrics["test"]["accuracy"]
    assert card["metrics"]["test"]["samples"] == len(test_split) == 49
    assert card["emolib_version"]
    assert card["git_commit"] is None or len(card["git_commit"]) == 40
    assert card["wall_time_s"] >= 0 and card["peak_memory_mb"] > 0
    assert card["parameters"] == result.model.count_params() > 0
    assert card["epochs_run"] == 2 and card["best_epoch"] in (0, 1)
    params = json.loads((result.run_dir / "params.json").read_text())
    for placement in (card["placement"], params["placement"]):  # one CPU here, so float32 by "auto"
        assert placement["devices"] == 1 and placement["precision"] == "float32"
    assert params["config"]["devices"] == 1 and params["config"]["precision"] == "auto"


@pytest.mark.backend
def test_metrics_json_matches_the_saved_model(finished_run):
    result, test_split = finished_run
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["evaluated_split"] == "test" and metrics["epochs_run"] == 2
    loaded = M.load_model(result.run_dir)
    again = E.evaluate_split(loaded.model, test_split, loaded.labels)
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "samples"):
        assert again[key] == pytest.approx(metrics["test"][key], abs=1e-9), key
    assert again["confusion"] == metrics["test"]["confusion"]
    # the saved model is the best epoch's (by validation accuracy)
    history = _history(result.run_dir)
    best = max(history, key=lambda row: row["val_accuracy"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["val"]["accuracy"] == pytest.approx(best["val_accuracy"], abs=1e-6)


def test_finished_run_is_returned_as_is(finished_run, fer_small, monkeypatch):
    result, _ = finished_run
    card_before = (result.run_dir / "model.json").stat().st_mtime_ns

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(keras.Model, "fit", no_fit)
    train_split, val_split, test_split, _ = fer_small
    again = T.train(_config(), train_split, val_split, test_split, run_dir=result.run_dir, verbose=0)
    assert again.run_dir == result.run_dir
    assert again.metrics == json.loads((result.run_dir / "metrics.json").read_text())
    assert [row["epoch"] for row in again.history] == [0, 1]
    assert (result.run_dir / "model.json").stat().st_mtime_ns == card_before


def test_finished_run_trains_on_to_a_larger_budget(finished_run, fer_small, tmp_path):
    result, _ = finished_run
    run_dir = tmp_path / result.run_dir.name
    shutil.copytree(result.run_dir, run_dir)
    before = _history(run_dir)
    train_split, val_split, test_split, info = fer_small
    extended = T.train(_config(epochs=3), train_split, val_split, test_split, run_dir=run_dir,
                       data_info=info, verbose=0)
    history = _history(run_dir)
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert history[:2] == before, "the first two epochs were re-run"
    assert json.loads((run_dir / "model.json").read_text())["epochs_run"] == 3
    assert extended.metrics == json.loads((run_dir / "metrics.json").read_text())
    assert runs.run_params(run_dir)["config"]["epochs"] == 3, "params.json records the new budget, as the CLI"


def test_python_resume_refuses_a_budget_below_the_epochs_done(finished_run, fer_small, tmp_path):
    result, _ = finished_run
    run_dir = tmp_path / result.run_dir.name
    shutil.copytree(result.run_dir, run_dir)
    params_before = (run_dir / "params.json").read_text()
    train_split, val_split, test_split, info = fer_small
    with pytest.raises(ValueError, match="already trained 2 epochs"):
        T.train(_config(epochs=1), train_split, val_split, test_split, run_dir=run_dir, verbose=0)
    assert (run_dir / "params.json").read_text() == params_before


@pytest.mark.backend
def test_fine_tuning_starts_from_the_trained_model(finished_run, fer_small, tmp_path):
    result, _ = finished_run
    train_split, val_split, _, info = fer_small
    source = M.load_model(result.run_dir).model
    started_with = []

    class FirstWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            started_with.extend(self.model.get_weights())

    config = _config(epochs=1, init_from=str(result.run_dir), augment={"flip": True}, learning_rate=1e-4)
    tuned = T.train(config, train_split, val_split, output=tmp_path, name="tuned", data_info=info,
                    callbacks=[FirstWeights()], verbose=0)
    assert len(started_with) == len(source.get_weights())
    for before, start in zip(source.get_weights(), started_with):
        np.testing.assert_array_equal(before, start)
    params = json.loads((tuned.run_dir / "params.json").read_text())
    assert params["config"]["init_from"] == str(result.run_dir)
    assert params["config"]["augment"] == {"flip": True}


def test_fine_tuning_refuses_a_model_trained_on_another_val_carve(finished_run, fer2013_dir, cache_dir,
                                                                   tmp_path):
    result, _ = finished_run
    train_split, val_split, _, info = T.load_data("fer2013", fer2013_dir, 48, 1, max_per_class=30, seed=1,
                                                  test_split=None, cache=cache_dir)
    with pytest.raises(ValueError, match="another validation split"):
        T.train(_config(epochs=1, init_from=str(result.run_dir)), train_split, val_split, output=tmp_path,
                data_info=info, verbose=0)
    assert not list(tmp_path.iterdir()), "a refused run left a run directory behind"


def test_training_on_restarts_early_stopping_patience(finished_run, fer_small, tmp_path):
    result, _ = finished_run
    run_dir = tmp_path / result.run_dir.name
    shutil.copytree(result.run_dir, run_dir)
    state_file = run_dir / T.CHECKPOINT_DIR / "state.json"
    state = json.loads(state_file.read_text())
    state["callbacks"][0].update(best=1.0, wait=1)  # no epoch can beat it: patience 2 ends after one more
    state_file.write_text(json.dumps(state))
    train_split, val_split, test_split, info = fer_small
    T.train(_config(epochs=4, patience=2), train_split, val_split, test_split, run_dir=run_dir,
            data_info=info, verbose=0)
    assert [row["epoch"] for row in _history(run_dir)] == [0, 1, 2, 3], "the restart kept the old patience"
    assert json.loads(state_file.read_text())["budget"] == 4


# ---------------------------------------------------------------------------------------------------
# Kill and resume
# ---------------------------------------------------------------------------------------------------

class Killed(RuntimeError):
    pass


class KillAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise Killed("killed after epoch 0")


def _plateau_best(losses):
    """The best loss ReduceLROnPlateau keeps: a new one counts only when lower by more than min_delta."""
    min_delta = keras.callbacks.ReduceLROnPlateau().min_delta
    best = math.inf
    for loss in losses:
        if loss < best - min_delta:
            best = loss
    return best


@pytest.mark.parametrize("schedule", [pytest.param("cosine", marks=pytest.mark.backend), "plateau"])
def test_killed_run_resumes_where_it_stopped(fer_small, tmp_path, schedule):
    train_split, val_split, test_split, info = fer_small
    config = _config(epochs=3, schedule=schedule, warmup_epochs=1)
    with pytest.raises(Killed):
        T.train(config, train_split, val_split, test_split, output=tmp_path, name="killed", data_info=info,
                callbacks=[KillAfterFirstEpoch()], verbose=0)
    (run_dir,) = list(tmp_path.iterdir())
    assert not T.is_complete(run_dir)
    assert (run_dir / T.CHECKPOINT_DIR / "last.keras").is_file()
    first = _history(run_dir)
    assert [row["epoch"] for row in first] == [0]
    params_before = (run_dir / "params.json").read_text()

    result = T.train(config, train_split, val_split, test_split, run_dir=run_dir, data_info=info, verbose=0)
    assert result.run_dir == run_dir and T.is_complete(run_dir)
    history = _history(run_dir)
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert history[0] == first[0], "epoch 0 was re-run or its row rewritten"
    assert (run_dir / "params.json").read_text() == params_before
    # the callbacks' counters survived the restart: their best values cover epoch 0 too
    state = json.loads((run_dir / T.CHECKPOINT_DIR / "state.json").read_text())
    early = state["callbacks"][0]
    assert early["best"] == pytest.approx(max(row["val_accuracy"] for row in history), abs=1e-6)
    if schedule == "cosine":  # the schedule continues after the restart
        for row in history:
            assert row["lr"] == pytest.approx(T._learning_rate_at(config, int(row["epoch"])), rel=1e-5)
    else:
        plateau = state["callbacks"][1]
        assert plateau["best"] == pytest.approx(_plateau_best([row["val_loss"] for row in history]), rel=1e-6)
        assert history[-1]["lr"] <= history[0]["lr"] == pytest.approx(config.learning_rate)
    card = json.loads((run_dir / "model.json").read_text())
    assert card["epochs_run"] == 3
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_run"] == 3


def _iterations(model_file: Path) -> int:
    """Optimizer steps a checkpointed model has taken."""
    return int(keras.ops.convert_to_numpy(keras.saving.load_model(model_file).optimizer.iterations))


def _fail_on_call(monkeypatch, target, name: str, call: int, error: BaseException):
    """Make ``target.name`` raise ``error`` on its ``call``-th call (a kill, or a full disk, just there)."""
    original, calls = getattr(target, name), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)


def _killed_run(fer_small, config, output, monkeypatch, target, name: str, message: str):
    """The run directory of a training killed at the second call of ``target.name``."""
    train_split, val_split, test_split, info = fer_small
    _fail_on_call(monkeypatch, target, name, 2, Killed(message))
    with pytest.raises(Killed):
        T.train(config, train_split, val_split, test_split, output=output, data_info=info, verbose=0)
    monkeypatch.undo()
    (run_dir,) = list(output.iterdir())
    return run_dir


def test_a_kill_before_the_state_is_written_resumes_from_the_recorded_epoch(fer_small, tmp_path, monkeypatch):
    """Issue 38's kill campaign: last.keras was replaced before state.json, so a kill between the two
    resumed epoch 1 from the model that had already trained it (an epoch trained twice)."""
    train_split, val_split, test_split, info = fer_small
    config = _config(epochs=2)
    run_dir = _killed_run(fer_small, config, tmp_path, monkeypatch, T, "write_json",
                          "killed before epoch 1's state.json")
    checkpoint = run_dir / T.CHECKPOINT_DIR
    assert json.loads((checkpoint / "state.json").read_text())["epoch"] == 1
    per_epoch = _iterations(checkpoint / "last.keras")
    T.train(config, train_split, val_split, test_split, run_dir=run_dir, data_info=info, verbose=0)
    assert [row["epoch"] for row in _history(run_dir)] == [0, 1]
    assert _iterations(checkpoint / "last.keras") == 2 * per_epoch, "an epoch was trained twice"
    assert sorted(p.name for p in checkpoint.iterdir()) == ["best.weights.h5", "last.keras", "state.json"]


def test_a_kill_after_the_last_state_is_written_keeps_the_whole_history(fer_small, tmp_path, monkeypatch):
    """Issue 38's kill campaign: history.csv was written after state.json; a kill between the two at
    the last epoch left a finished run whose history.csv missed that epoch."""
    train_split, val_split, test_split, info = fer_small
    config = _config(epochs=2)
    run_dir = _killed_run(fer_small, config, tmp_path, monkeypatch, runs, "write_history",
                          "killed before epoch 1's history row")
    T.train(config, train_split, val_split, test_split, run_dir=run_dir, data_info=info, verbose=0)
    assert [row["epoch"] for row in _history(run_dir)] == [0, 1]
    assert json.loads((run_dir / "model.json").read_text())["epochs_run"] == 2


def test_a_kill_while_a_run_directory_is_made_leaves_no_run_directory(tmp_path, monkeypatch):
    """Issue 38's kill campaign: a kill while train wrote params.json left a run directory holding only
    a temporary file, which --resume refuses and the next run leaves behind."""
    import socket

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # a pid that no longer runs: the killed process that was making a run directory
    stale = tmp_path / f".20261207-000000-small.tmp-{socket.gethostname()}-{finished.pid}-abc123"
    stale.mkdir()
    (stale / "params.json").write_text('{"config": {"backb')
    run_dir = runs.new_run_dir(tmp_path, "small", {"config": {"backbone": "simple_cnn"}})
    assert [p.name for p in tmp_path.iterdir()] == [run_dir.name]
    assert json.loads((run_dir / "params.json").read_text()) == {"config": {"backbone": "simple_cnn"}}
    monkeypatch.setattr(runs, "write_params", lambda *a: (_ for _ in ()).throw(Killed("killed")))
    with pytest.raises(Killed):
        runs.new_run_dir(tmp_path, "other", {"config": {}})
    assert [p.name for p in tmp_path.iterdir()] == [run_dir.name]


def test_a_full_disk_at_a_checkpoint_keeps_the_last_one_and_resumes(fer_small, tmp_path, monkeypatch, capsys):
    """Issue 38, a full disk: the epoch-2 checkpoint cannot be written; the epoch-1 one stays whole, the
    command says what to do, and the same command with --resume finishes once space is free."""
    import errno

    train_split, val_split, test_split, info = fer_small
    config = _config(epochs=2)

    original = keras.Model.save

    def save(self, path, *args, **kwargs):
        if "pending-0002" in str(path):  # the epoch-2 checkpoint's model
            Path(path).write_bytes(b"PK\x03\x04 half a model")  # what fitted before the disk was full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save)
    with pytest.raises(OSError, match="No space left"):
        T.train(config, train_split, val_split, test_split, output=tmp_path, data_info=info, verbose=0)
    monkeypatch.undo()
    (run_dir,) = list(tmp_path.iterdir())
    checkpoint = run_dir / T.CHECKPOINT_DIR
    assert sorted(p.name for p in checkpoint.iterdir()) == ["best.weights.h5", "last.keras", "state.json"]
    assert json.loads((checkpoint / "state.json").read_text())["epoch"] == 1
    keras.saving.load_model(checkpoint / "last.keras")
    assert [row["epoch"] for row in _history(run_dir)] == [0]
    T.train(config, train_split, val_split, test_split, run_dir=run_dir, data_info=info, verbose=0)
    assert T.is_complete(run_dir) and [row["epoch"] for row in _history(run_dir)] == [0, 1]


# ---------------------------------------------------------------------------------------------------
# Class weights, schedules, run directories
# ---------------------------------------------------------------------------------------------------

def _imbalanced(split: D.Split) -> D.Split:
    """Class c keeps 3 + 4·c faces: balanced weights then differ from 1."""
    rows = [np.flatnonzero(split.labels == c)[: 3 + 4 * c] for c in range(len(split.classes))]
    return split.subset(np.sort(np.concatenate(rows)))


@pytest.mark.backend
def test_class_weights_change_the_loss_and_runs_never_overwrite(fer_small, tmp_path):
    train_split, val_split, _, info = fer_small
    train_split = _imbalanced(train_split)
    weights = T._class_weight(_config(class_weights="balanced"), train_split.labels, 7)
    assert weights == D.class_weights(train_split.labels, 7)
    assert weights[0] > 1 > weights[6]

    runs = {}
    for class_weights in (None, "balanced"):
        runs[class_weights] = T.train(_config(epochs=1, class_weights=class_weights), train_split, val_split,
                                      output=tmp_path, name="same-name", data_info=info, verbose=0)
    plain, balanced = runs[None], runs["balanced"]
    assert not math.isclose(plain.history[0]["loss"], balanced.history[0]["loss"], rel_tol=1e-4)
    # the same name, in the same second: two directories, the first one intact
    assert plain.run_dir != balanced.run_dir and plain.run_dir.parent == balanced.run_dir.parent
    assert T.is_complete(plain.run_dir) and T.is_complete(balanced.run_dir)
    assert json.loads((plain.run_dir / "params.json").read_text())["config"]["class_weights"] is None
    # without a test split the validation split is the evaluated one
    assert plain.metrics["evaluated_split"] == "val" and "test" not in plain.metrics


def test_class_weight_option_forms():
    labels = np.array([0, 0, 0, 1])
    assert T._class_weight(_config(), labels, 2) is None
    assert T._class_weight(_config(class_weights="none"), labels, 2) is None
    assert T._class_weight(_config(class_weights={"1": 3}), labels, 2) == {1: 3.0}
    assert T._class_weight(_config(class_weights="balanced"), labels, 2) == pytest.approx({0: 4 / 6, 1: 2.0})


@pytest.mark.backend
def test_cosine_schedule_learning_rates():
    config = _config(epochs=5, learning_rate=1e-3, schedule="cosine", warmup_epochs=1)
    rates = [T._learning_rate_at(config, epoch) for epoch in range(5)]
    assert rates[0] == pytest.approx(5e-4)  # warm-up: base · 1/2
    assert rates[1] == pytest.approx(1e-3)  # cosine starts at the base rate
    assert rates[3] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))  # half way
    assert all(a > b for a, b in zip(rates[1:], rates[2:], strict=False))  # then decays
    assert T._learning_rate_at(config, 5) == pytest.approx(1e-5)  # floor: 1 % of the base
    assert T._learning_rate_at(config, 50) == pytest.approx(1e-5)


def test_new_run_dirs_are_distinct(tmp_path):
    dirs = [runs.new_run_dir(tmp_path, "same") for _ in range(3)]
    assert len(set(dirs)) == 3 and all(d.is_dir() and d.name.endswith(("same", "same-1", "same-2"))
                                       for d in dirs)


def test_wrong_image_size_is_a_clear_error(fer_small, tmp_path):
    train_split, val_split, _, _ = fer_small
    with pytest.raises(ValueError, match="load the data with that size"):
        T.train(_config(epochs=1, input_size=32), train_split, val_split, output=tmp_path, verbose=0)
    assert not list(tmp_path.iterdir()), "a refused run left a run directory behind"


# ---------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------

def test_cli_train_prints_its_run_dir(fer2013_dir, fer_small, cache_dir, tmp_path):
    # fer_small has filled cache_dir: the subprocess reuses the decoded images
    output = tmp_path / "runs"
    process = subprocess.run(
        [sys.executable, "-m", "emolib", "train", "--dataset", "fer2013", "--data", str(fer2013_dir),
         "--backbone", "simple_cnn", "--max-per-class", "8", "--epochs", "1", "--batch-size", "16",
         "--augment", "flip,zoom=0.05", "--devices", "all", "--precision", "float32", "--output", str(output),
         "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "EMOLIB_CACHE": str(cache_dir)})
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-3000:]
    summary = json.loads(process.stdout[process.stdout.index("{"):])
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == output and T.is_complete(run_dir)
    assert 0 <= summary["accuracy"] <= 1 and 0 <= summary["macro_f1"] <= 1
    params = json.loads((run_dir / "params.json").read_text())
    assert params["data"]["max_per_class"] == 8
    assert params["config"]["augment"] == {"flip": True, "zoom": 0.05}
    assert params["config"]["devices"] == "all" and params["placement"]["precision"] == "float32"


def test_cli_resume_refuses_a_budget_below_the_epochs_done(finished_run, tmp_path, capsys):
    from emolib import commands

    result, _ = finished_run
    run_dir = tmp_path / result.run_dir.name
    shutil.copytree(result.run_dir, run_dir)
    params_before = (run_dir / "params.json").read_text()
    code = commands.main(["train", "--dataset", "fer2013", "--data", "unused", "--resume", str(run_dir),
                          "--epochs", "1"])
    assert code == 2
    assert "already trained 2 epochs" in capsys.readouterr().err
    assert (run_dir / "params.json").read_text() == params_before

# ---------------------------------------------------------------------------------------------------
# Logit adjustment of a finished run
# ---------------------------------------------------------------------------------------------------

@pytest.mark.backend
def test_adjust_writes_an_adjusted_run_and_leaves_the_old_one(finished_run, fer_small, tmp_path, capsys):
    from emolib.runs import adjust as C
    from emolib.runs.export import export_run

    result, test_split = finished_run
    before = {name: (result.run_dir / name).read_bytes() for name in ("model.json", "metrics.json")}
    _, val_split, _, _ = fer_small
    adjusted = C.adjust_run(result.run_dir, val_split, test_split, tmp_path / "runs")
    assert T.is_complete(adjusted) and adjusted.name.endswith("-small-adjusted")
    assert {name: (result.run_dir / name).read_bytes() for name in before} == before
    card = json.loads((adjusted / "model.json").read_text())
    adjustment = card["logit_adjustment"]
    assert adjustment["fitted_on"] == "val" and adjustment["source_run"] == result.run_dir.name
    assert adjustment["prior"] == pytest.approx([1 / 7] * 7)  # 30 faces per class: a uniform prior
    metrics = json.loads((adjusted / "metrics.json").read_text())
    assert metrics["source_metrics"]["test"]["accuracy"] == result.metrics["test"]["accuracy"]
    assert metrics["test"]["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])  # uniform prior
    model_dir = export_run(adjusted, tmp_path / "models" / "adjusted")
    loaded = M.load_model(model_dir)
    assert isinstance(loaded.model.layers[-1], M.LogitAdjustment)
    assert E.evaluate_split(loaded.model, test_split, loaded.labels)["accuracy"] == \
        pytest.approx(metrics["test"]["accuracy"], abs=1e-9)
    from emolib import commands

    assert commands.main(["train", "--dataset", "fer2013", "--data", "unused", "--resume", str(adjusted),
                          "--epochs", "5"]) == 2
    assert "no training checkpoint" in capsys.readouterr().err
    with pytest.raises(ValueError, match="already logit-adjusted"):
        C.adjust_run(adjusted, val_split, test_split)
    with pytest.raises(ValueError, match="not the one"):
        C.adjust_run(result.run_dir, val_split.subset(np.arange(10)))
    with pytest.raises(ValueError, match="not the one"):  # same size and classes, other faces
        C.adjust_run(result.run_dir, test_split)


@pytest.mark.backend
def test_calibrate_writes_a_calibrated_run_and_a_calibrated_model_directory(finished_run, fer_small, tmp_path,
                                                                            monkeypatch, capsys):
    from emolib import commands
    from emolib.predict import EmotionPredictor
    from emolib.runs import calibrate as CAL
    from emolib.runs.export import export_run

    result, test_split = finished_run
    _, val_split, _, _ = fer_small
    card = json.loads((result.run_dir / "model.json").read_text())
    assert card["uncertain_below"]["fitted_on"] == "val" and "ece" in card["metrics"]["test"]
    monkeypatch.setattr(CAL, "MIN_ECE_GAIN", -1.0)  # keep whatever temperature is fitted
    calibrated = CAL.calibrate_model(result.run_dir, val_split, test_split, tmp_path / "runs")
    assert calibrated.name.endswith("-small-calibrated") and T.is_complete(calibrated)
    metrics = json.loads((calibrated / "metrics.json").read_text())
    calibration = metrics["calibration"]
    assert calibration["ece_before"]["val"] == pytest.approx(result.metrics["val"]["ece"])
    assert metrics["val"]["ece"] <= calibration["ece_before"]["val"] + 1e-9  # fitted on val to lower it
    assert metrics["test"]["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])  # argmax kept
    loaded = M.load_model(calibrated)
    assert loaded.model.layers[-1].temperature == pytest.approx(calibration["temperature"], rel=1e-3)
    with pytest.raises(ValueError, match="already calibrated"):
        CAL.calibrate_model(calibrated, val_split, test_split)
    assert commands.main(["average", str(calibrated), "--last", "2"]) == 2
    assert "is calibrated" in capsys.readouterr().err

    model_dir = export_run(result.run_dir, tmp_path / "model")  # a model directory: calibrated in place
    assert CAL.calibrate_model(model_dir, val_split, test_split, output=model_dir) == model_dir
    in_place = json.loads((model_dir / "model.json").read_text())
    assert in_place["calibration"]["source"] == "model" and in_place["training_data"] == card["training_data"]
    predictor = EmotionPredictor(model_dir, detector="haar")
    assert predictor.uncertain_below == in_place["uncertain_below"]["confidence"]
    face = predictor.predict(np.repeat(test_split.images[0], 3, axis=-1), whole_image=True)["predictions"][0]
    assert face["uncertain"] == (face["confidence"] < predictor.uncertain_below)


def test_run_commands_refuse_an_exported_model_with_a_clear_error(finished_run, fer_small, tmp_path, capsys):
    from emolib import commands
    from emolib.runs import ensemble as ENS
    from emolib.runs.export import export_run

    result, _ = finished_run
    model_dir = str(export_run(result.run_dir, tmp_path / "model"))
    for argv in (["ensemble", model_dir, str(result.run_dir)], ["adjust", model_dir],
                 ["average", model_dir, "--last", "2"],
                 ["train", "--dataset", "fer2013", "--data", "unused", "--resume", model_dir]):
        assert commands.main(argv) == 2, argv
        assert "is an exported model, not a run directory" in capsys.readouterr().err, argv
    _, val_split, _, _ = fer_small
    with pytest.raises(ValueError, match="is an exported model, not a run directory"):
        ENS.ensemble_runs([result.run_dir, model_dir], val_split, output=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="is not a run directory"):
        runs.run_params(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------------
# Ensembles of runs trained with other seeds on one val split
# ---------------------------------------------------------------------------------------------------

def test_cli_trains_an_ensemble_member_on_the_same_val_split_and_ensembles_it(
        finished_run, fer_small, fer2013_dir, cache_dir, tmp_path, monkeypatch, capsys):
    from emolib import commands
    from emolib.runs import adjust as C
    from emolib.runs import ensemble as N

    monkeypatch.setenv("EMOLIB_CACHE", str(cache_dir))  # fer_small filled it: no decoding here
    result, test_split = finished_run
    assert commands.main(["train", "--dataset", "fer2013", "--data", str(fer2013_dir),
                          "--backbone", "simple_cnn", "--name", "member", "--epochs", "1",
                          "--batch-size", "32", "--max-per-class", "30", "--seed", "1",
                          "--split-seed", "0", "--output", str(tmp_path)]) == 0
    member = next(tmp_path.glob("*-member"))
    params = json.loads((member / "params.json").read_text())
    assert params["config"]["seed"] == 1 and params["data"]["seed"] == 0
    member_card = json.loads((member / "model.json").read_text())
    first_card = json.loads((result.run_dir / "model.json").read_text())
    assert member_card["training_data"]["val_fingerprint"] == first_card["training_data"]["val_fingerprint"]
    capsys.readouterr()

    assert commands.main(["ensemble", str(result.run_dir), str(member), "--output", str(tmp_path)]) == 0
    assert "ensemble of 2 runs" in capsys.readouterr().out
    ensembled = next(tmp_path.glob("*-small-ensemble2"))
    card = json.loads((ensembled / "model.json").read_text())
    assert card["ensemble"]["members"] == [result.run_dir.name, member.name]
    members = [M.load_model(run).model for run in (result.run_dir, member)]
    probabilities = [E.predict_proba(model, test_split.images) for model in members]
    assert not np.allclose(*probabilities, atol=1e-3), "the members agree: the test proves nothing"
    model = M.load_model(ensembled).model
    np.testing.assert_allclose(E.predict_proba(model, test_split.images), np.mean(probabilities, axis=0),
                               rtol=1e-5, atol=1e-6)
    metrics = json.loads((ensembled / "metrics.json").read_text())
    assert metrics["source_metrics"]["test"]["accuracy"] == result.metrics["test"]["accuracy"]
    assert E.evaluate_split(model, test_split, L.EMOTIONS_7)["accuracy"] == \
        pytest.approx(metrics["test"]["accuracy"], abs=1e-9)

    _, val_split, _, _ = fer_small
    adjusted = C.adjust_run(ensembled, val_split, test_split, tmp_path / "adjusted")  # chains on
    assert json.loads((adjusted / "model.json").read_text())["ensemble"] == card["ensemble"]
    with pytest.raises(ValueError, match="another architecture"):
        M.transfer_weights(model, members[0])
    with pytest.raises(ValueError, match="not the one"):
        N.ensemble_runs([result.run_dir, member], test_split, test_split)
    with pytest.raises(ValueError, match="logit-adjusted"):
        N.ensemble_runs([result.run_dir, adjusted], val_split)
    with pytest.raises(ValueError, match="at least 2 members"):
        N.ensemble_model(members[:1])


@pytest.mark.backend
def test_distillation_mixes_the_teachers_probabilities_into_the_targets(finished_run, fer_small, fer2013_dir,
                                                                        cache_dir, tmp_path):
    result, _ = finished_run
    train_split, val_split, _, info = fer_small
    config = _config(epochs=1, teacher=str(result.run_dir), teacher_weight=0.25)
    probabilities = T._teacher_probabilities(config, train_split, val_split, info)
    teacher = M.load_model(result.run_dir).model
    np.testing.assert_allclose(probabilities, E.predict_proba(teacher, train_split.images), rtol=1e-5)
    assert not np.allclose(probabilities.max(axis=1), 1), "a one-hot teacher: the test proves nothing"
    targets = T._targets(config, train_split, train_split, probabilities)
    rows = np.arange(len(train_split))
    np.testing.assert_allclose(targets.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(targets[rows, train_split.labels],
                               0.75 + 0.25 * probabilities[rows, train_split.labels], rtol=1e-5)
    np.testing.assert_array_equal(T._targets(_config(), train_split, train_split), train_split.labels)

    plain = T.train(_config(epochs=1, label_smoothing=0.1), train_split, val_split, output=tmp_path,
                    name="plain", data_info=info, verbose=0)
    distilled = T.train(_config(epochs=1, label_smoothing=0.1, teacher=str(result.run_dir)), train_split,
                        val_split, output=tmp_path, name="distilled", data_info=info, verbose=0)
    assert not math.isclose(plain.history[0]["loss"], distilled.history[0]["loss"], rel_tol=1e-4)
    card = json.loads((distilled.run_dir / "model.json").read_text())
    assert card["config"]["teacher"] == str(result.run_dir) and card["config"]["teacher_weight"] == 0.5

    refused = tmp_path / "refused"

    def distil(train_with, val_with, weight=0.5, input_size=None, dataset=info["dataset"]):
        T.train(_config(epochs=1, teacher=str(result.run_dir), teacher_weight=weight, input_size=input_size),
                train_with, val_with, output=refused, data_info={**info, "dataset": dataset}, verbose=0)

    other_train, other_val, _, _ = T.load_data("fer2013", fer2013_dir, 48, 1, max_per_class=30, seed=1,
                                               test_split=None, cache=cache_dir)
    with pytest.raises(ValueError, match="another validation split"):
        distil(other_train, other_val)
    with pytest.raises(ValueError, match="teacher weight must be in"):
        distil(train_split, val_split, weight=0.0)
    reordered = val_split.classes[::-1]
    with pytest.raises(ValueError, match="the same classes"):
        distil(dataclasses.replace(train_split, classes=reordered),
               dataclasses.replace(val_split, classes=reordered))
    cropped = [dataclasses.replace(split, images=split.images[:, :40, :40])
               for split in (train_split, val_split)]
    # from another dataset (so no val carve to compare), at another image size
    with pytest.raises(ValueError, match=r"takes \(48, 48, 1\) images"):
        distil(*cropped, input_size=40, dataset="cropped")
    assert not refused.exists(), "a refused run left a run directory behind"


# ---------------------------------------------------------------------------------------------------
# Export a run as a model directory
# ---------------------------------------------------------------------------------------------------

@pytest.mark.backend
def test_cli_export_makes_a_loadable_model_directory(finished_run, tmp_path):
    result, test_split = finished_run
    target = tmp_path / "models" / "my-model"
    target.mkdir(parents=True)
    (target / "README.md").write_text("hand-written")
    process = subprocess.run(
        [sys.executable, "-m", "emolib", "export", str(result.run_dir), "--to", str(target),
         "--training-command", "emolib train --epochs 2",
         "--training-command", "emolib train --resume RUN --epochs 3"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert f"test accuracy {result.metrics['test']['accuracy']:.4f}" in process.stdout
    assert (target / "README.md").read_text() == "hand-written"
    for name in ("model.keras", "metrics.json", "history.csv", "report.txt", "curves.png", "confusion.png"):
        assert (target / name).read_bytes() == (result.run_dir / name).read_bytes(), name
    card = json.loads((target / "model.json").read_text())
    run_card = json.loads((result.run_dir / "model.json").read_text())
    assert card["name"] == "my-model" and card["source_run"] == result.run_dir.name
    assert card["training_commands"] == ["emolib train --epochs 2", "emolib train --resume RUN --epochs 3"]
    assert {k: v for k, v in card.items() if k not in ("name", "source_run", "training_commands")} == \
        {k: v for k, v in run_card.items() if k != "name"}
    loaded = M.load_model(target)
    assert E.evaluate_split(loaded.model, test_split, loaded.labels)["accuracy"] == \
        pytest.approx(card["metrics"]["test"]["accuracy"], abs=1e-9)


def test_export_refuses_an_unfinished_run(finished_run, tmp_path):
    from emolib.runs.export import export_run

    result, _ = finished_run
    unfinished = tmp_path / "unfinished"
    shutil.copytree(result.run_dir, unfinished)
    (unfinished / "model.json").unlink()
    with pytest.raises(ValueError, match="not a finished run"):
        export_run(unfinished, tmp_path / "out")
    with pytest.raises(ValueError, match="no run directory at"):
        export_run(tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_resume_with_keep_snapshots_keeps_the_epochs_to_come(finished_run, cache_dir, tmp_path,
                                                                   monkeypatch):
    from emolib import commands

    monkeypatch.setenv("EMOLIB_CACHE", str(cache_dir))  # fer_small filled it: no decoding here
    result, _ = finished_run
    run_dir = tmp_path / result.run_dir.name
    shutil.copytree(result.run_dir, run_dir)
    shutil.rmtree(run_dir / T.CHECKPOINT_DIR / T.SNAPSHOT_DIR)
    params = json.loads((run_dir / "params.json").read_text())
    params["config"]["keep_snapshots"] = False  # a run trained without snapshots
    (run_dir / "params.json").write_text(json.dumps(params))
    assert commands.main(["train", "--dataset", "fer2013", "--data", "unused", "--resume", str(run_dir),
                          "--epochs", "3", "--keep-snapshots"]) == 0
    assert json.loads((run_dir / "params.json").read_text())["config"]["keep_snapshots"] is True
    assert [p.name for p in runs.snapshot_files(run_dir)] == ["epoch-003.weights.h5"]


# ---------------------------------------------------------------------------------------------------
# Weight averaging (SWA) of a finished run's last epochs
# ---------------------------------------------------------------------------------------------------

@pytest.mark.backend
def test_average_writes_the_mean_of_the_last_epochs_as_a_new_run(finished_run, fer_small, tmp_path):
    from emolib.runs import average as A

    result, test_split = finished_run
    train_split, val_split, _, _ = fer_small
    before = {name: (result.run_dir / name).read_bytes() for name in ("model.json", "metrics.json")}
    averaged = A.average_run(result.run_dir, 2, train_split, val_split, test_split, tmp_path / "runs")
    assert T.is_complete(averaged) and averaged.name.endswith("-small-swa2")
    assert {name: (result.run_dir / name).read_bytes() for name in before} == before
    card = json.loads((averaged / "model.json").read_text())
    assert card["weight_average"]["epochs"] == [1, 2]
    assert card["weight_average"]["source_run"] == result.run_dir.name
    model = M.load_model(averaged).model
    epochs = []
    for snapshot in runs.snapshot_files(result.run_dir):
        result.model.load_weights(snapshot)
        epochs.append(result.model.get_layer("predictions").get_weights()[0])
    np.testing.assert_allclose(model.get_layer("predictions").get_weights()[0], np.mean(epochs, axis=0),
                               rtol=1e-5, atol=1e-7)
    assert not np.allclose(epochs[0], epochs[1]), "the two epochs are the same: the test proves nothing"
    metrics = json.loads((averaged / "metrics.json").read_text())
    assert metrics["source_metrics"]["test"]["accuracy"] == result.metrics["test"]["accuracy"]
    assert E.evaluate_split(model, test_split, L.EMOTIONS_7)["accuracy"] == \
        pytest.approx(metrics["test"]["accuracy"], abs=1e-9)
    with pytest.raises(ValueError, match="--keep-snapshots"):
        A.average_run(result.run_dir, 3, train_split, val_split, test_split, tmp_path / "runs")
    with pytest.raises(ValueError, match="not the one"):
        A.average_run(result.run_dir, 2, train_split, test_split, test_split, tmp_path / "runs")


def test_cli_average_and_adjust_chain_on_a_copied_run(finished_run, cache_dir, tmp_path, monkeypatch,
                                                         capsys):
    from emolib import commands

    monkeypatch.setenv("EMOLIB_CACHE", str(cache_dir))  # fer_small filled it: no decoding here
    result, _ = finished_run
    run_dir = tmp_path / result.run_dir.name
    shutil.copytree(result.run_dir, run_dir)
    assert commands.main(["average", str(run_dir), "--last", "2"]) == 0
    out = capsys.readouterr().out
    assert "averaged the last 2 epochs" in out and "test accuracy" in out
    averaged = next(tmp_path.glob("*-small-swa2"))
    assert commands.main(["adjust", str(averaged)]) == 0  # an averaged run can be logit-adjusted
    adjusted = next(tmp_path.glob("*-small-swa2-adjusted"))
    card = json.loads((adjusted / "model.json").read_text())
    assert card["weight_average"]["epochs"] == [1, 2] and "logit_adjustment" in card
    assert commands.main(["average", str(adjusted), "--last", "2"]) == 2
    assert "logit-adjusted" in capsys.readouterr().err


def test_average_of_runs_fine_tuned_from_one_model_is_a_soup(finished_run, fer_small, cache_dir, tmp_path,
                                                              monkeypatch, capsys):
    from emolib import commands
    from emolib.runs import average as A

    monkeypatch.setenv("EMOLIB_CACHE", str(cache_dir))  # fer_small filled it: no decoding here
    result, test_split = finished_run
    train_split, val_split, _, info = fer_small
    tuned = T.train(_config(epochs=1, init_from=str(result.run_dir), seed=1, learning_rate=1e-3),
                    train_split, val_split, test_split, output=tmp_path, name="tuned", data_info=info,
                    verbose=0).run_dir
    re_estimated_on = []  # simple_cnn has no batch norm: record that the soup re-estimates it
    monkeypatch.setattr(A, "recompute_batch_norm", lambda model, images: re_estimated_on.append(len(images)))
    assert commands.main(["average", str(result.run_dir), str(tuned), "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "averaged the models of 2 runs" in out and "test accuracy" in out
    soup = next(tmp_path.glob("*-small-soup2"))
    card = json.loads((soup / "model.json").read_text())
    assert card["weight_average"]["runs"] == [result.run_dir.name, tuned.name]
    assert card["weight_average"]["batch_norm"] == "re-estimated on train"
    ingredients = [M.load_model(run).model for run in (result.run_dir, tuned)]
    kernels = [model.get_layer("predictions").get_weights()[0] for model in ingredients]
    assert not np.allclose(*kernels), "the two runs are the same: the test proves nothing"
    model = M.load_model(soup).model
    np.testing.assert_allclose(model.get_layer("predictions").get_weights()[0], np.mean(kernels, axis=0),
                               rtol=1e-5, atol=1e-7)
    assert re_estimated_on == [len(train_split)], "batch norm not re-estimated on the training faces"
    metrics = json.loads((soup / "metrics.json").read_text())
    assert metrics["source_metrics"]["val"]["accuracy"] == result.metrics["val"]["accuracy"]
    assert E.evaluate_split(model, test_split, L.EMOTIONS_7)["accuracy"] == \
        pytest.approx(metrics["test"]["accuracy"], abs=1e-9)

    for argv in (["average", str(tuned)], ["average", str(result.run_dir), str(tuned), "--last", "2"]):
        assert commands.main(argv) == 2, argv
        assert "give one run and --last N" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not the one"):
        A.soup_runs([result.run_dir, tuned], train_split, test_split)
    with pytest.raises(ValueError, match="different architectures"):
        A.mean_weights([kernels[:1], [kernels[0][:2]]])
    relabelled = shutil.copytree(tuned, tmp_path / "relabelled")
    card = json.loads((relabelled / "model.json").read_text())
    (relabelled / "model.json").write_text(json.dumps({**card, "labels": card["labels"][::-1]}))
    with pytest.raises(ValueError, match="must predict the same classes"):
        A.soup_runs([result.run_dir, relabelled], train_split, val_split)


@pytest.mark.backend
def test_vote_targets_give_the_cross_entropy_to_each_faces_votes(ferplus_dir, cache_dir, tmp_path):
    train_split, val_split, _, info = T.load_data("ferplus", ferplus_dir, 48, 1, max_per_class=12,
                                                  test_split=None, val_split="valid", cache=cache_dir)
    assert info["val_split"] == "valid" and len(train_split.classes) == 8
    assert not np.allclose(train_split.soft_labels.max(axis=1), 1), "unanimous votes prove nothing"
    config = _config(epochs=1)  # targets "auto": votes, since FER+ has them
    targets = T._targets(config, train_split, train_split)
    np.testing.assert_allclose(targets, train_split.soft_labels)
    np.testing.assert_array_equal(T._targets(_config(targets="labels"), train_split, train_split),
                                  train_split.labels)

    model = M.build_model("simple_cnn", 8, 48, 1, seed=0)
    model.compile(optimizer="adam", loss=T._loss(config, train_split))
    batch = train_split.images[:16]
    probabilities = E.predict_proba(model, batch).astype(np.float64)
    by_hand = -(targets[:16] * np.log(np.clip(probabilities, 1e-7, 1))).sum(axis=1).mean()
    assert model.evaluate(batch, targets[:16], batch_size=16, verbose=0) == pytest.approx(by_hand, rel=1e-4)

    result = T.train(config, train_split, val_split, output=tmp_path, name="votes", data_info=info, verbose=0)
    assert runs.run_params(result.run_dir)["config"]["targets"] == "auto"
    without_votes = train_split.subset(np.arange(len(train_split)))
    without_votes.soft_labels = None
    with pytest.raises(ValueError, match="vote distributions"):
        T._targets(_config(targets="votes"), without_votes, without_votes)

"""Valence and arousal as targets: the head learning a synthetic target on a generated AffectNet fixture,
its metrics against hand-computed values, the predictor / API / dashboard fields, the ONNX runtime, the
train CLI's format options, and notebook 02 on ``dataset="affectnet"``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from emolib import commands
from emolib import evaluate as E
from emolib import train as T
from emolib.runs.splits import load_recorded_data

REPO = Path(__file__).resolve().parents[1]
SIZE = 32  # face side the tests train at
TRAIN_FACES, TEST_FACES = 160, 40
CSV_HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,"
              "valence,arousal")


def synthetic_valence(brightness: float) -> float:
    """The made-up valence of a face darkened to ``brightness`` (0.2..1 → -1..1)."""
    return round(2 * (brightness - 0.2) / 0.8 - 1, 3)


@pytest.fixture(scope="module")
def affectnet_va(tmp_path_factory, ferplus_dir) -> Path:
    """AffectNet's CSV release: FER+ faces pasted at a known box into 80×80 photos, each darkened by a
    random factor that sets its valence; arousal is -valence/2, "not annotated" (-2) on every fifth face.
    Expression codes 0-7 in turn (with 40 FER+ faces, each face keeps one code)."""
    root = tmp_path_factory.mktemp("affectnet_va")
    files = sorted((ferplus_dir / "FER2013Test").glob("*.png"))[:40]
    faces = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in files]
    images = root / "Manually_Annotated_Images" / "1"
    images.mkdir(parents=True)
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir()
    rng = np.random.default_rng(0)
    for name, count, first in (("training.csv", TRAIN_FACES, 0), ("validation.csv", TEST_FACES, 10_000)):
        rows = [CSV_HEADER]
        for i in range(count):
            brightness = rng.uniform(0.2, 1.0)
            photo = np.full((80, 80), 30, np.uint8)
            photo[8:72, 8:72] = (cv2.resize(faces[i % 40], (64, 64)) * brightness).astype(np.uint8)
            cv2.imwrite(str(images / f"{first + i}.png"), photo)
            valence = synthetic_valence(brightness)
            arousal = -2 if i % 5 == 0 else round(-valence / 2, 3)
            rows.append(f"1/{first + i}.png,8,8,64,64,,{i % 8},{valence},{arousal}")
        (lists / name).write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def va_splits(affectnet_va, tmp_path_factory):
    return T.load_data("affectnet", affectnet_va, SIZE, 1, cache=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def va_run(va_splits, tmp_path_factory):
    """A small CNN with both heads trained on the fixture (a few seconds)."""
    train_split, val_split, test_split, info = va_splits
    config = T.TrainConfig(backbone="simple_cnn", input_size=SIZE, channels=1, epochs=15, batch_size=16,
                           heads="expression+va", va_weight=1.0, patience=15, seed=0)
    return T.train(config, train_split, val_split, test_split, output=tmp_path_factory.mktemp("runs"),
                   data_info=info, verbose=0)


@pytest.mark.slow
def test_the_va_head_learns_a_synthetic_target(va_run, va_splits):
    test = va_run.metrics["test"]
    truth = va_splits[2].valence_arousal
    assert test["valence"]["samples"] == TEST_FACES
    assert test["arousal"]["samples"] == TEST_FACES - TEST_FACES // 5  # -2 is "not annotated": left out
    assert test["valence"]["ccc"] > 0.6 and test["arousal"]["ccc"] > 0.5
    assert test["valence"]["rmse"] < 0.8 * np.nanstd(truth[:, 0])  # better than predicting the mean
    card = json.loads((va_run.run_dir / "model.json").read_text())
    assert card["metrics"]["test"]["valence"] == test["valence"]
    assert card["config"]["heads"] == "expression+va"
    history = va_run.history
    assert {"accuracy", "val_accuracy", "valence_arousal_loss", "val_valence_arousal_loss"} <= set(history[0])
    assert history[-1]["val_valence_arousal_loss"] < history[0]["val_valence_arousal_loss"] / 2
    assert "val_predictions_accuracy" not in history[0]  # early stopping reads val_accuracy


def test_regression_metrics_against_hand_computed_values():
    # truth 1..4 (mean 2.5, variance 1.25), predictions 2,2,4,4 (mean 3, variance 1), covariance 1
    scores = E.regression_metrics([1, 2, 3, 4], [2, 2, 4, 4])
    assert scores["rmse"] == pytest.approx(math.sqrt(0.5))
    assert scores["pearson"] == pytest.approx(1 / math.sqrt(1.25))
    assert scores["ccc"] == pytest.approx(2 * 1 / (1.25 + 1 + 0.5 ** 2))  # 0.8
    assert scores["samples"] == 4
    perfect = E.regression_metrics([0.1, -0.3, 0.5], [0.1, -0.3, 0.5])
    assert perfect["ccc"] == pytest.approx(1) and perfect["rmse"] == 0
    shifted = E.regression_metrics([0.1, -0.3, 0.5], [0.3, -0.1, 0.7])  # Pearson 1, CCC below 1
    assert shifted["pearson"] == pytest.approx(1) and shifted["ccc"] < 0.9
    constant = E.regression_metrics([0.1, 0.2, 0.3], [0.0, 0.0, 0.0])
    assert constant["pearson"] is None and constant["ccc"] == 0
    assert E.regression_metrics([], [])["rmse"] is None
    both = E.valence_arousal_metrics(np.array([[1, np.nan], [2, 0.5], [3, np.nan], [4, -0.5]]),
                                     np.array([[2, 9], [2, 0.5], [4, 9], [4, -0.5]]))
    assert both["valence"] == scores and both["arousal"]["samples"] == 2 and both["arousal"]["rmse"] == 0


def test_the_va_loss_leaves_unannotated_values_out():
    from keras import ops

    from emolib.models import masked_squared_error

    truth = np.array([[0.5, np.nan], [np.nan, np.nan], [0.0, -1.0]], np.float32)
    predicted = np.array([[0.1, 0.9], [0.7, 0.7], [0.2, -0.5]], np.float32)
    loss = ops.convert_to_numpy(masked_squared_error(truth, predicted))
    assert loss == pytest.approx([0.4 ** 2 / 2, 0.0, (0.2 ** 2 + 0.5 ** 2) / 2])


def test_the_va_head_is_added_after_the_expression_model():
    """Same seed: the expression layers start as in an expression-only model (the head draws last)."""
    from emolib import models as M

    plain = M.build_model("simple_cnn", 8, SIZE, 1, seed=0)
    both = M.build_model("simple_cnn", 8, SIZE, 1, seed=0, valence_arousal=True)
    assert [o.shape for o in both.outputs] == [(None, 8), (None, 2)] and not M.has_valence_arousal(plain)
    assert M.has_valence_arousal(both)
    assert both.get_layer("valence_arousal").activation.__name__ == "tanh"


def test_training_va_needs_a_dataset_that_has_it(va_splits, tmp_path):
    train_split, val_split, _, _ = va_splits
    no_va = train_split.subset(np.arange(len(train_split)))
    no_va.valence_arousal = None
    config = T.TrainConfig(backbone="simple_cnn", input_size=SIZE, epochs=1, heads="expression+va")
    with pytest.raises(ValueError, match="needs a dataset with valence and arousal"):
        T.train(config, no_va, val_split, output=tmp_path)
    with pytest.raises(ValueError, match="heads must be one of"):
        T.train(T.TrainConfig(heads="va"), train_split, val_split, output=tmp_path)
    assert not list(tmp_path.iterdir())  # refused before a run directory was made


@pytest.mark.slow
def test_predictor_results_carry_valence_and_arousal_only_from_a_va_model(va_run, affectnet_va,
                                                                          tiny_model_dir, capsys):
    from emolib.predict import EmotionPredictor

    photo = str(affectnet_va / "Manually_Annotated_Images" / "1" / "10001.png")
    face = EmotionPredictor(model=va_run.run_dir, runtime="keras").predict(photo, whole_image=True)
    face = face["predictions"][0]
    assert -1 <= face["valence"] <= 1 and -1 <= face["arousal"] <= 1
    assert {"emotion", "label", "emoji", "confidence", "box", "probabilities"} <= set(face)
    mirrored = EmotionPredictor(model=va_run.run_dir, runtime="keras", flip_tta=True).predict(
        photo, whole_image=True)["predictions"][0]
    assert -1 <= mirrored["valence"] <= 1
    assert commands.main(["predict", photo, "--model", str(va_run.run_dir), "--runtime", "keras",
                          "--whole-image"]) == 0
    assert f"valence {face['valence']:+.2f} arousal {face['arousal']:+.2f}" in capsys.readouterr().out
    plain = EmotionPredictor(model=tiny_model_dir, runtime="keras").predict(photo, whole_image=True)
    assert "valence" not in plain["predictions"][0] and "arousal" not in plain["predictions"][0]


@pytest.mark.slow
def test_the_api_adds_valence_and_arousal_as_optional_fields(va_run, affectnet_va, tiny_model_dir):
    from fastapi.testclient import TestClient

    from emolib import runtimes
    from emolib.serve import create_app

    photo = (affectnet_va / "Manually_Annotated_Images" / "1" / "10001.png").read_bytes()
    for model, has_va in ((va_run.run_dir, True), (tiny_model_dir, False)):
        with TestClient(create_app(runtimes.load(model, "keras"), "haar")) as client:
            reply = client.post("/predict?whole_image=true", files={"file": ("face.png", photo, "image/png")})
            assert reply.status_code == 200
            face = reply.json()["predictions"][0]
            assert ("valence" in face and "arousal" in face) == has_va, face
            if not has_va:
                schema = client.get("/openapi.json").json()["components"]["schemas"]["FacePrediction"]
                assert {"valence", "arousal"} <= set(schema["properties"])
                assert not {"valence", "arousal"} & set(schema.get("required", []))


def test_the_dashboard_plots_valence_and_arousal_when_present():
    from emolib.widgets import results

    face = {"emotion": "happy", "label": "Joie", "emoji": "😄", "confidence": 80.0,
            "box": {"x": 0, "y": 0, "w": 10, "h": 10}, "probabilities": {"happy": 0.8, "sad": 0.2}}

    def shown(card) -> str:
        return "".join(child.value for child in card.children[-1].children)

    with_va = shown(results.face_card({**face, "valence": 0.5, "arousal": -0.25}, 0))
    assert "emolib-affect-plot" in with_va and "+0.50" in with_va and "-0.25" in with_va
    assert "emolib-affect" not in shown(results.face_card(face, 0))
    svg = results.valence_arousal_html(1.0, 1.0, side=84)
    assert 'cx="80.0" cy="4.0"' in svg  # top right: pleasant and excited


@pytest.mark.slow
def test_onnx_export_keeps_both_outputs(va_run, affectnet_va, tmp_path):
    pytest.importorskip("tf2onnx", reason="exporting to ONNX needs TensorFlow's tf2onnx")
    import shutil

    from emolib.predict import EmotionPredictor
    from emolib.runs.export import export_onnx

    model_dir = tmp_path / "model"
    shutil.copytree(va_run.run_dir, model_dir, ignore=shutil.ignore_patterns("checkpoint"))
    faces = np.random.default_rng(0).integers(0, 256, (8, SIZE, SIZE, 1)).astype(np.uint8)
    _, check = export_onnx(model_dir, faces=faces)
    assert check["argmax_agreement"] == 1 and check["valence_arousal_max_abs_diff"] < 1e-4
    photo = str(affectnet_va / "Manually_Annotated_Images" / "1" / "10002.png")
    by_runtime = {runtime: EmotionPredictor(model=model_dir, runtime=runtime).predict(
        photo, whole_image=True)["predictions"][0] for runtime in ("keras", "onnx")}
    for key in ("valence", "arousal"):
        assert by_runtime["onnx"][key] == pytest.approx(by_runtime["keras"][key], abs=1e-3)


@pytest.mark.slow
def test_train_cli_takes_format_options_and_heads_and_records_them(affectnet_va, tmp_path, monkeypatch,
                                                                   capsys):
    monkeypatch.setenv("EMOLIB_CACHE", str(tmp_path / "cache"))
    code = commands.main(["train", "--dataset", "affectnet", "--data", str(affectnet_va), "--classes", "7",
                          "--margin", "0.1", "--no-square", "--backbone", "simple_cnn",
                          "--input-size", str(SIZE), "--epochs", "1", "--batch-size", "32",
                          "--heads", "expression+va", "--va-weight", "2",
                          "--output", str(tmp_path / "runs"), "--json"])
    assert code == 0
    printed = capsys.readouterr().out
    assert '"valence": {' in printed and '"ccc"' in printed  # the --json summary
    run_dir = next((tmp_path / "runs").iterdir())
    params = json.loads((run_dir / "params.json").read_text())
    assert params["data"]["options"] == {"classes": 7, "margin": 0.1, "square": False}
    assert params["config"]["heads"] == "expression+va" and params["config"]["va_weight"] == 2.0
    assert params["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["valence"]["samples"] == TEST_FACES - TEST_FACES // 8  # contempt left out
    # a resume reloads the data with the recorded options: the same 7 classes and val carve
    train_split, val_split, _, info = load_recorded_data(params["data"], SIZE, 1)
    assert info["options"] == params["data"]["options"] and len(train_split.classes) == 7
    assert val_split.content_fingerprint() == params["data"]["val_fingerprint"]


def test_cli_refuses_options_a_format_does_not_take(affectnet_va, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMOLIB_CACHE", str(tmp_path / "cache"))
    assert commands.main(["data", "--dataset", "affectnet", "--data", str(affectnet_va),
                          "--boxes", "b.csv"]) == 2
    error = capsys.readouterr().err
    assert "the affectnet format takes no option boxes (its options: classes, margin, square, align)" in error


@pytest.mark.slow
def test_notebook_02_trains_both_heads_on_affectnet(affectnet_va, tmp_path):
    import papermill

    out = tmp_path / "02.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "02-simple-cnn.ipynb"), str(out), cwd=str(REPO / "notebooks"),
        kernel_name="python3", progress_bar=False,
        parameters={"dataset": "affectnet", "data": str(affectnet_va), "input_size": SIZE, "epochs": 1,
                    "max_per_class": 16, "heads": "expression+va", "dataset_options": {"classes": 7},
                    "output": str(tmp_path / "runs")})
    run_dir = next((tmp_path / "runs").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["valence"]["samples"] > 0
    assert json.loads((run_dir / "params.json").read_text())["data"]["options"] == {"classes": 7}
    shown = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in json.loads(out.read_text())[
        "cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "valence CCC" in shown


def test_parquet_predictions_keep_valence_and_arousal_where_given(tmp_path):
    pytest.importorskip("pyarrow")
    from emolib import folder_predict

    face = {"emotion": "happy", "label": "Joie", "emoji": "😄", "confidence": 80.0, "uncertain": False,
            "box": {"x": 0, "y": 0, "w": 10, "h": 10}, "probabilities": {"happy": 0.8, "sad": 0.2}}
    records = [{"path": "a.png", "error": None, "faces_detected": 1, "detector": "yunet",
                "predictions": [{**face, "valence": 0.5, "arousal": -0.25}]},
               {"path": "b.png", "error": None, "faces_detected": 1, "detector": "yunet",
                "predictions": [face]}]
    output = folder_predict.ParquetOutput(tmp_path / "p.parquet")
    output.write(records)
    assert [row["predictions"] for row in output.read()] == [r["predictions"] for r in records]


def test_an_idea_is_not_split_by_the_fields_added_to_train_config():
    """A run recorded before ``heads`` and ``va_weight`` existed has the setup of one with their defaults."""
    from emolib.experiments.compare import _full_config

    before = {"backbone": "simple_cnn", "epochs": 30, "seed": 1}
    assert _full_config(before) == _full_config({**before, "heads": "expression", "va_weight": 1.0})
    assert _full_config(before) != _full_config({**before, "heads": "expression+va"})


def test_an_expression_model_initialises_a_model_with_both_heads():
    """Fine-tuning a shipped expression model on AffectNet with --heads expression+va: every layer but the
    new head is copied (and back: a va model initialises an expression-only one)."""
    from emolib import models as M

    plain = M.build_model("simple_cnn", 7, SIZE, 1, seed=1)
    both = M.build_model("simple_cnn", 7, SIZE, 1, seed=2, valence_arousal=True)
    assert M.transfer_weights(plain, both) == ["valence_arousal"]
    np.testing.assert_array_equal(both.get_layer("predictions").get_weights()[0],
                                  plain.get_layer("predictions").get_weights()[0])
    other = M.build_model("simple_cnn", 7, SIZE, 1, seed=3)
    assert M.transfer_weights(both, other) == []
    np.testing.assert_array_equal(other.get_layer("predictions").get_weights()[0],
                                  plain.get_layer("predictions").get_weights()[0])


def test_temperature_and_logit_adjustment_keep_the_va_output():
    from emolib import models as M

    model = M.build_model("simple_cnn", 7, SIZE, 1, seed=0, valence_arousal=True)
    faces = np.random.default_rng(0).integers(0, 256, (4, SIZE, SIZE, 1)).astype(np.float32)
    probabilities, values = model.predict_on_batch(faces)
    for changed in (M.with_temperature(model, 2.0), M.with_logit_adjustment(model, [0.5] + [0.0] * 6)):
        new_probabilities, new_values = changed.predict_on_batch(faces)
        np.testing.assert_allclose(new_values, values, atol=1e-6)
        assert not np.allclose(new_probabilities, probabilities)

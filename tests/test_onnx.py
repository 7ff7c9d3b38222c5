"""ONNX: ``emolib export --format onnx``, the shipped ``model.onnx`` files, the onnx runtime without Keras."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emolib import modelcards, runtimes
from emolib.files import sha256_file

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("emolib-ferplus", "emolib-fer2013")
#: what the onnx runtime must never bring into its process
FRAMEWORKS = ("tensorflow", "keras", "jax", "torch")


def test_export_command_writes_onnx_and_card_and_prints_the_check(tiny_model_dir, fer2013_dir, tmp_path):
    out = tmp_path / "exported"
    process = subprocess.run([sys.executable, "-m", "emolib", "export", str(tiny_model_dir),
                              "--format", "onnx", "--out", str(out), "--check-faces", "100"],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    card = json.loads((out / "model.json").read_text())
    check = card["onnx"]["check"]
    assert check["faces"] == 100 and check["max_abs_diff"] < 1e-4 and check["argmax_agreement"] == 1.0
    assert f"max |Δprob| {check['max_abs_diff']:.2e}, argmax agreement 1.0000" in process.stdout
    assert card["onnx"]["keras_sha256"] == sha256_file(tiny_model_dir / "model.keras")
    assert card["labels"] == json.loads((tiny_model_dir / "model.json").read_text())["labels"]
    assert not (out / "model.keras").exists()
    loaded = runtimes.load(out)  # only the ONNX file is there: auto picks it
    assert isinstance(loaded.model, runtimes.OnnxModel)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_onnx_models_agree_with_keras(name, fer2013_dir):
    from emolib.runs.export import check_faces, check_onnx

    directory = modelcards.SHIPPED_MODELS_DIR / name
    card = json.loads((directory / "model.json").read_text())
    assert card["onnx"]["keras_sha256"] == sha256_file(directory / "model.keras"), "re-run the export"
    keras_model = runtimes.load(directory, "keras")
    check = check_onnx(keras_model, directory / "model.onnx", check_faces(keras_model, count=300, seed=1))
    assert check["max_abs_diff"] < 1e-4 and check["argmax_agreement"] == 1.0
    assert runtimes.default_runtime(name) == "onnx"


def test_the_onnx_runtime_imports_no_framework_and_matches_keras(photos_dir):
    from emolib.predict import EmotionPredictor

    photo = photos_dir / "grace_hopper.jpg"
    code = ("import json, sys; from emolib.predict import EmotionPredictor; "
            f"p = EmotionPredictor('emolib-ferplus', runtime='onnx'); r = p.predict({str(photo)!r}); "
            f"print(json.dumps({{'result': r, 'runtime': p.runtime, 'imported': "
            f"[m for m in {FRAMEWORKS!r} if m in sys.modules]}}))")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    got = json.loads(process.stdout)
    assert got["imported"] == [] and got["runtime"] == "onnx"
    expected = EmotionPredictor("emolib-ferplus", runtime="keras").predict(photo)
    result = got["result"]
    assert result["faces_detected"] == expected["faces_detected"] == 1
    for face, want in zip(result["predictions"], expected["predictions"], strict=True):
        assert set(face) == set(want) and face["box"] == want["box"] and face["emotion"] == want["emotion"]
        assert list(face["probabilities"]) == list(want["probabilities"])
        np.testing.assert_allclose(list(face["probabilities"].values()), list(want["probabilities"].values()),
                                   atol=1e-4)


def test_auto_runtime_falls_back_to_keras_without_an_up_to_date_onnx_file(tiny_model_dir, tiny_onnx_dir,
                                                                         tmp_path):
    assert runtimes.default_runtime(tiny_model_dir) == "keras"
    assert runtimes.default_runtime(tiny_onnx_dir) == "onnx"
    assert runtimes.default_runtime(tiny_onnx_dir / "model.keras") == "onnx"
    stale = tmp_path / "stale"
    shutil.copytree(tiny_onnx_dir, stale)
    (stale / "model.keras").write_bytes((stale / "model.keras").read_bytes() + b"\0")  # a changed model
    assert runtimes.default_runtime(stale) == "keras"
    with pytest.raises(ValueError, match="was not made from the model.keras beside it"):
        runtimes.load(stale, "onnx")
    with pytest.raises(FileNotFoundError, match="no model file"):
        runtimes.load(tiny_model_dir, "onnx")
    with pytest.raises(ValueError, match="unknown runtime 'tflite'"):
        runtimes.load(tiny_model_dir, "tflite")



@pytest.mark.parametrize("kept", [False, True])
def test_calibrating_in_place_keeps_model_onnx_while_it_is_the_same_model(tiny_onnx_dir, fer2013_dir,
                                                                          tmp_path, monkeypatch, kept):
    from emolib import train
    from emolib.runs import calibrate

    directory = tmp_path / "model"
    shutil.copytree(tiny_onnx_dir, directory)
    _, val_split, _, _ = train.load_data("fer2013", fer2013_dir, 48, 1, max_per_class=4,
                                         cache=tmp_path / "cache")
    monkeypatch.setattr(calibrate, "MIN_ECE_GAIN", -1.0 if kept else 1.0)  # keep any temperature, or none
    calibrate.calibrate_model(directory, val_split, output=directory)
    card = json.loads((directory / "model.json").read_text())
    assert (card["calibration"]["temperature"] != 1.0) == kept
    if kept:  # the model changed: its old ONNX file is refused until exported again
        assert "onnx" not in card
        with pytest.raises(ValueError, match="was not made from the model.keras beside it"):
            runtimes.onnx_model_file(directory)
    else:  # re-saved with the same weights: the ONNX file still runs it
        assert card["onnx"]["keras_sha256"] == sha256_file(directory / "model.keras")
        assert runtimes.onnx_model_file(directory)[0] == directory / "model.onnx"

"""The shipped models: each card's test scores are what the evaluate CLI measures today.

This is the acceptance check of the model cards (±0.1 pt): one pass over each model's test split
(FER2013 test, 7,178 faces; FER+ test, 3,137 faces).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emolib import labels as L
from emolib import models as M

pytestmark = pytest.mark.backend  # run on every backend (see the Makefile)

REPO = Path(__file__).resolve().parents[1]


#: Each shipped model: its classes and the dataset its card's test metrics come from.
SHIPPED = {"emolib-fer2013": (L.EMOTIONS_7, "fer2013", 7178),
           "emolib-ferplus": (L.EMOTIONS_8, "ferplus", 3137)}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_card_is_complete(name):
    classes, dataset, test_faces = SHIPPED[name]
    directory = M.SHIPPED_MODELS_DIR / name
    card = json.loads((directory / M.CARD_FILE).read_text())
    assert card["name"] == name
    assert card["labels"] == list(classes)
    assert card["training_data"]["dataset"] == dataset and card["metrics"]["test"]["samples"] == test_faces
    assert card["source_run"] and card["training_commands"]
    assert (directory / M.MODEL_FILE).stat().st_size < 8 * 2**20, "keep the shipped model small"


def test_the_default_is_the_ferplus_model_as_it_wins_on_the_shared_classes():
    """The default is the model that scores higher on FER+ test restricted to the 7 classes both know
    (the comparison that bench/shipped_models.py prints and the FER+ model's README.md records)."""
    assert M.DEFAULT_MODEL_DIR == M.SHIPPED_MODELS_DIR / "emolib-ferplus"
    assert set(M.list_models()) == set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_evaluate_cli_reproduces_the_card(name, request):
    classes, dataset, test_faces = SHIPPED[name]
    data_dir = request.getfixturevalue(f"{dataset}_dir")
    card = json.loads((M.SHIPPED_MODELS_DIR / name / M.CARD_FILE).read_text())
    process = subprocess.run(
        [sys.executable, "-m", "emolib", "evaluate", "--model", name,
         "--dataset", dataset, "--data", str(data_dir), "--split", "test", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stderr[-3000:]
    measured = json.loads(process.stdout[process.stdout.index("{"):])
    assert measured["samples"] == test_faces and measured["labels"] == list(classes)
    assert measured["accuracy"] == pytest.approx(card["metrics"]["test"]["accuracy"], abs=0.001)
    assert measured["macro_f1"] == pytest.approx(card["metrics"]["test"]["macro_f1"], abs=0.001)
    assert measured["ece"] == pytest.approx(card["metrics"]["test"]["ece"], abs=0.001)
    calibration = card["calibration"]  # emolib calibrate: a temperature kept only where val ECE drops
    if calibration["temperature"] != 1.0:
        assert measured["ece"] <= 0.02 < calibration["ece_before"]["test"]
    else:
        assert measured["ece"] == pytest.approx(calibration["ece_before"]["test"], abs=1e-6)
    assert card["uncertain_below"]["target_precision"] == 0.9 and card["uncertain_below"]["accuracy"] >= 0.9


def test_a_plain_call_of_the_shipped_model_predicts(fer2013_dir):
    """``model(faces)`` in a notebook is inference: no augmentation, the same as ``predict``."""
    import keras
    import numpy as np

    from emolib import data as D

    model = M.load_model().model
    faces = D.load_split("fer2013", fer2013_dir, "test", 48, 1).images[:32]
    weights = model.get_weights()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(faces)), model.predict(faces, verbose=0),
                               atol=1e-5)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)

"""The shipped default model: its card's test accuracy is what the evaluate CLI measures today.

This is the acceptance check of the model card (±0.1 pt): one pass over the 7,178 FER2013 test faces.
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


def test_shipped_model_card_is_complete():
    card = json.loads((M.DEFAULT_MODEL_DIR / M.CARD_FILE).read_text())
    assert card["name"] == M.DEFAULT_MODEL_DIR.name
    assert card["labels"] == list(L.EMOTIONS_7)
    assert card["training_data"]["dataset"] == "fer2013" and card["metrics"]["test"]["samples"] == 7178
    assert card["source_run"] and card["training_commands"]
    assert (M.DEFAULT_MODEL_DIR / M.MODEL_FILE).stat().st_size < 8 * 2**20, "keep the shipped model small"


def test_evaluate_cli_reproduces_the_card_accuracy(fer2013_dir, tmp_path):
    card = json.loads((M.DEFAULT_MODEL_DIR / M.CARD_FILE).read_text())
    process = subprocess.run(
        [sys.executable, "-m", "emolib", "evaluate", "--model", str(M.DEFAULT_MODEL_DIR),
         "--dataset", "fer2013", "--data", str(fer2013_dir), "--split", "test", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stderr[-3000:]
    measured = json.loads(process.stdout[process.stdout.index("{"):])
    assert measured["samples"] == 7178
    assert measured["accuracy"] == pytest.approx(card["metrics"]["test"]["accuracy"], abs=0.001)
    assert measured["macro_f1"] == pytest.approx(card["metrics"]["test"]["macro_f1"], abs=0.001)


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


def test_evaluate_cli_reproduces_the_ferplus_card(ferplus_dir):
    directory = M.SHIPPED_MODELS_DIR / "emolib-ferplus"
    card = json.loads((directory / M.CARD_FILE).read_text())
    assert card["labels"] == list(L.EMOTIONS_8) and card["training_data"]["val_split"] == "valid"
    process = subprocess.run(
        [sys.executable, "-m", "emolib", "evaluate", "--model", "emolib-ferplus", "--dataset", "ferplus",
         "--data", str(ferplus_dir), "--split", "test", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stderr[-3000:]
    measured = json.loads(process.stdout[process.stdout.index("{"):])
    assert measured["accuracy"] == pytest.approx(card["metrics"]["test"]["accuracy"], abs=0.001)
    assert measured["macro_f1"] == pytest.approx(card["metrics"]["test"]["macro_f1"], abs=0.001)

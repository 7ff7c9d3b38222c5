"""Post-hoc logit adjustment: fitting τ, the in-graph layer (a run-level test is in test_train.py)."""

import keras
import numpy as np
import pytest
from sklearn.metrics import f1_score

from emolib import models as M
from emolib.runs import adjust as C


def _under_predicted_rare_class(seed=0, n=3000):
    """Scores biased against class 2 (10 % of the labels), as a model trained on an imbalanced set."""
    rng = np.random.default_rng(seed)
    prior = np.array([0.45, 0.45, 0.10])
    labels = rng.choice(3, size=n, p=prior)
    logits = 1.5 * np.eye(3)[labels] + rng.normal(0, 1, (n, 3)) + np.log(prior)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, labels, prior


def test_fit_tau_raises_macro_f1_of_an_imbalanced_problem():
    probs, labels, prior = _under_predicted_rare_class()
    tau = C.fit_tau(probs, labels, prior)
    before = f1_score(labels, probs.argmax(1), average="macro")
    after = f1_score(labels, C.adjusted_predictions(probs, C.adjustment_bias(prior, tau)), average="macro")
    assert tau > 0
    assert after > before + 0.02
    held_out, held_labels, _ = _under_predicted_rare_class(seed=1)  # the gain is not a fit to noise
    assert f1_score(held_labels, C.adjusted_predictions(held_out, C.adjustment_bias(prior, tau)),
                    average="macro") > f1_score(held_labels, held_out.argmax(1), average="macro")


def test_fit_tau_keeps_a_model_that_gains_nothing():
    labels = np.array([0, 0, 0, 1, 1, 2])
    probs = np.eye(3)[labels] * 0.9 + 0.1 / 3
    assert C.fit_tau(probs, labels, [0.5, 1 / 3, 1 / 6]) == 0.0


def test_logit_adjustment_layer_matches_numpy_and_survives_saving(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Softmax()(inputs))
    bias = C.adjustment_bias([0.6, 0.3, 0.1], 1.0)
    adjusted = M.with_logit_adjustment(model, bias)
    x = np.array([[2.0, 1.0, 0.5], [0.1, 0.2, 0.3]], dtype=np.float32)
    probs = np.asarray(model.predict_on_batch(x))
    expected = np.exp(np.log(probs) + bias)
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(adjusted.predict_on_batch(x), expected, rtol=1e-5)
    adjusted.save(tmp_path / "adjusted.keras")
    reloaded = keras.saving.load_model(tmp_path / "adjusted.keras")
    np.testing.assert_allclose(reloaded.predict_on_batch(x), expected, rtol=1e-5)
    assert isinstance(reloaded.layers[-1], M.LogitAdjustment)


def test_zero_bias_changes_nothing():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Softmax()(inputs))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(M.with_logit_adjustment(model, np.zeros(4)).predict_on_batch(x),
                               model.predict_on_batch(x), rtol=1e-5)


def test_adjust_refuses_an_unfinished_run(tmp_path):
    with pytest.raises(ValueError, match="not a finished run"):
        C.adjust_run(tmp_path, val_split=None)

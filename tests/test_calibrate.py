"""Calibration: its metrics, temperature scaling (fit, in-graph layer) and the "not sure" threshold
(a run-level test is in test_train.py)."""

import keras
import numpy as np
import pytest

from emolib import evaluate as E
from emolib import models as M
from emolib.runs import calibrate as C


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def _overconfident(temperature=2.0, seed=0, n=4000, classes=5):
    """Labels drawn from softmax(z), probabilities softmax(temperature · z): too sure by ``temperature``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    labels = np.array([rng.choice(classes, p=p) for p in _softmax(z)])
    return _softmax(temperature * z), labels


def test_calibration_metrics_of_a_small_case_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    m = E.calibration_metrics(probs, labels, bins=10)
    # bins: 0.9 holds two faces (one right): gap 0.4; 0.6 one right face: 0.4; 0.7 one right face: 0.3
    assert m["ece"] == pytest.approx((2 * 0.4 + 0.4 + 0.3) / 4)
    assert m["mce"] == pytest.approx(0.4)
    assert m["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.1, 0.6, 0.7])))
    assert m["brier"] == pytest.approx(np.mean([0.02, 1.62, 0.32, 0.18]))
    assert sum(m["reliability"]["count"]) == 4 and m["reliability"]["count"][8] == 2


def test_a_calibrated_model_has_a_small_ece_an_overconfident_one_a_large():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1.5, (4000, 5))
    labels = np.array([rng.choice(5, p=p) for p in _softmax(z)])
    assert E.calibration_metrics(_softmax(z), labels)["ece"] < 0.03
    assert E.calibration_metrics(_softmax(3 * z), labels)["ece"] > 0.1


def test_fit_temperature_recovers_the_overconfidence_and_keeps_every_decision():
    probs, labels = _overconfident(temperature=2.0)
    temperature = C.fit_temperature(probs, labels)
    assert temperature == pytest.approx(2.0, rel=0.1)
    scaled = C.scale_probabilities(probs, temperature)
    np.testing.assert_array_equal(scaled.argmax(1), probs.argmax(1))
    held_out, held_labels = _overconfident(temperature=2.0, seed=1)  # fitted, not memorised
    assert E.calibration_metrics(C.scale_probabilities(held_out, temperature), held_labels)["ece"] < \
        E.calibration_metrics(held_out, held_labels)["ece"] / 3


def test_temperature_layer_matches_numpy_and_survives_saving(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Softmax()(inputs))
    x = np.array([[2.0, 1.0, 0.5], [0.1, 0.2, 3.0]], dtype=np.float32)
    calibrated = M.with_temperature(model, 1.7)
    expected = C.scale_probabilities(np.asarray(model.predict_on_batch(x)), 1.7)
    np.testing.assert_allclose(calibrated.predict_on_batch(x), expected, rtol=1e-5)
    calibrated.save(tmp_path / "calibrated.keras")
    reloaded = keras.saving.load_model(tmp_path / "calibrated.keras")
    np.testing.assert_allclose(reloaded.predict_on_batch(x), expected, rtol=1e-5)
    assert reloaded.layers[-1].temperature == pytest.approx(1.7)


def test_uncertainty_threshold_keeps_the_most_answers_that_reach_the_target():
    probs, labels = _overconfident(temperature=1.0)
    found = E.uncertainty_threshold(probs, labels, 0.8)
    kept = probs.max(1) * 100 >= found["confidence"]
    assert np.mean(probs.argmax(1)[kept] == labels[kept]) >= 0.8 - 1e-9
    assert found["coverage"] == pytest.approx(kept.mean(), abs=1 / len(labels))
    lower = probs.max(1) * 100 >= found["confidence"] - 2  # keeping more falls below the target
    assert np.mean(probs.argmax(1)[lower] == labels[lower]) < 0.8
    assert E.uncertainty_threshold(probs, (labels + 1) % 5, 0.99)["confidence"] == 100.0  # never reached


def test_risk_coverage_is_accuracy_of_the_most_confident():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.55, 0.45]])
    threshold, coverage, accuracy = E.risk_coverage(probs, np.array([0, 0, 0, 1]))
    np.testing.assert_allclose(threshold, [0.9, 0.8, 0.6, 0.55])
    np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(accuracy, [1.0, 0.5, 2 / 3, 0.5])


def test_calibrate_refuses_an_unfinished_run(tmp_path):
    with pytest.raises(ValueError, match="not a finished run"):
        C.calibrate_model(tmp_path, val_split=None)

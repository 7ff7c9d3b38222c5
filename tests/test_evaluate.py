"""emolib.evaluate: metrics against hand-computed cases, cross-dataset scoring, flip TTA, the evaluate CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emolib import data as D
from emolib import evaluate as E
from emolib import labels as L
from emolib import models as M

pytestmark = pytest.mark.backend  # run on every backend (see the Makefile)

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------
# compute_metrics
# ---------------------------------------------------------------------------------------------------

def test_compute_metrics_hand_computed():
    # true a a b b c ; predicted a b b b a
    metrics = E.compute_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # a: P 1/2 R 1/2 F1 1/2 ; b: P 2/3 R 1 F1 0.8 ; c: 0
    per_class = metrics["per_class"]
    assert per_class["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per_class["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert metrics["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert metrics["weighted_f1"] == pytest.approx((2 * 0.5 + 2 * 0.8 + 1 * 0.0) / 5)
    assert metrics["labels"] == ["a", "b", "c"] and metrics["samples"] == 5
    json.dumps(metrics)  # plain Python types only


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_macro_f1_counts_only_classes_present_in_the_truth():
    classes = ["a", "b", "c", "d"]
    perfect = E.compute_metrics([0, 0, 1, 2], [0, 0, 1, 2], classes)
    assert perfect["macro_f1"] == pytest.approx(1.0)  # d has no image: not an F1 of 0
    assert perfect["accuracy"] == 1.0 and perfect["per_class"]["d"]["support"] == 0
    assert perfect["confusion"][3] == [0, 0, 0, 0] and len(perfect["confusion"]) == 4
    # a class predicted but absent from the truth does not enter the macro average either
    wrong = E.compute_metrics([0, 0, 1, 2], [0, 3, 1, 2], classes)
    assert wrong["macro_f1"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert wrong["per_class"]["d"]["precision"] == 0.0
    assert wrong["confusion"][0] == [1, 0, 0, 1]


def test_compute_metrics_all_wrong_and_empty():
    wrong = E.compute_metrics([0, 1], [1, 0], ["a", "b"])
    assert wrong["accuracy"] == 0.0 and wrong["macro_f1"] == 0.0 and wrong["balanced_accuracy"] == 0.0
    empty = E.compute_metrics([], [], ["a", "b"])
    assert empty["samples"] == 0 and empty["confusion"] == [[0, 0], [0, 0]] and empty["accuracy"] == 0.0
    assert empty["per_class"]["a"]["support"] == 0 and empty["labels"] == ["a", "b"]


# ---------------------------------------------------------------------------------------------------
# Cross-dataset evaluation with a fake model whose answer is written in the image
# ---------------------------------------------------------------------------------------------------

class PixelModel:
    """A fake model: each face's first pixel names a canonical emotion (its index in EMOTIONS_8).

    It puts ``confidence`` on that emotion's column (if it has one) and shares the rest over the
    ``decoy`` column (when given) or all the others.
    """

    def __init__(self, labels, confidence=0.7, decoy=None):
        self.labels = list(labels)
        self.confidence, self.decoy = confidence, decoy
        self.output_shape = (None, len(self.labels))
        self.calls = 0

    def predict_on_batch(self, batch):
        self.calls += 1
        k = len(self.labels)
        out = np.zeros((len(batch), k), dtype=np.float32)
        for row, image in enumerate(batch):
            emotion = L.EMOTIONS_8[int(image.flat[0])]
            if self.decoy is not None:
                out[row, self.labels.index(self.decoy)] = self.confidence
                rest = 1 - self.confidence
            else:
                out[row] = (1 - self.confidence) / (k - 1)
                rest = self.confidence
            if emotion in self.labels:
                out[row, self.labels.index(emotion)] = rest
        return out


def _split(emotions: list[str], classes, size: int = 4) -> D.Split:
    """A hand-made split: face i shows ``emotions[i]`` (as its pixel value, for PixelModel)."""
    images = np.zeros((len(emotions), size, size, 1), dtype=np.uint8)
    for i, emotion in enumerate(emotions):
        images[i] = L.EMOTIONS_8.index(emotion)
    labels = np.array([list(classes).index(e) for e in emotions])
    return D.Split(images, labels, tuple(classes), [f"face{i}.png" for i in range(len(emotions))])


def test_seven_class_model_on_eight_class_split_scores_shared_classes():
    # truth (FER+ style, 8 classes) ; the model answers 'happy' for the 5th face, which is sad
    truth = ["happy", "happy", "sad", "contempt", "sad", "neutral", "contempt", "angry"]
    split = _split(truth, L.EMOTIONS_8)
    split.images[4] = L.EMOTIONS_8.index("happy")
    model_labels = list(reversed(L.EMOTIONS_7))  # a model whose card lists another order
    result = E.evaluate_split(PixelModel(model_labels), split, model_labels)

    assert result["left_out"] == 2  # the contempt faces
    assert result["samples"] == 6
    assert result["labels"] == list(L.EMOTIONS_7)  # scored classes, in the dataset's order
    assert "contempt" not in result["per_class"]
    assert result["accuracy"] == pytest.approx(5 / 6)
    assert result["per_class"]["happy"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8,
                                                          "support": 2})
    assert result["per_class"]["sad"]["recall"] == 0.5
    assert result["per_class"]["disgust"]["support"] == 0
    # macro-F1 over the classes present: angry 1, happy 0.8, sad 2/3, neutral 1
    assert result["macro_f1"] == pytest.approx((1 + 0.8 + 2 / 3 + 1) / 4)
    assert np.asarray(result["confusion"]).shape == (7, 7)
    assert np.asarray(result["confusion"]).sum() == 6


def test_eight_class_model_on_seven_class_split_never_predicts_the_missing_class():
    truth = ["angry", "fear", "happy", "surprise", "neutral"]
    split = _split(truth, L.EMOTIONS_7)
    # the model's top answer is always contempt (0.6); its runner-up is the true emotion (0.4)
    model = PixelModel(L.EMOTIONS_8, confidence=0.6, decoy="contempt")
    result = E.evaluate_split(model, split, L.EMOTIONS_8)
    assert result["left_out"] == 0 and result["samples"] == 5
    assert result["labels"] == list(L.EMOTIONS_7)
    assert result["accuracy"] == 1.0 and result["macro_f1"] == 1.0


def test_scores_of_outputs_predicted_once_equal_evaluate_split_and_check_their_count():
    truth = ["happy", "sad", "contempt", "angry"]
    split = _split(truth, L.EMOTIONS_8)
    model = PixelModel(L.EMOTIONS_7)
    scored = split.subset([0, 1, 3])  # contempt is not a class of the model
    probs, _ = E.predict_outputs(model, scored.images)
    assert E.score_outputs(split, L.EMOTIONS_7, probs) == E.evaluate_split(model, split, L.EMOTIONS_7)
    with pytest.raises(ValueError, match="4 predictions for the 3 faces"):
        E.score_outputs(split, L.EMOTIONS_7, E.predict_outputs(model, split.images)[0])


def test_a_runs_results_predict_each_split_once(monkeypatch, tmp_path):
    from emolib import runs

    split = _split(["happy", "sad", "angry", "neutral"], L.EMOTIONS_7, size=48)
    model = M.build_model("simple_cnn", num_classes=7, input_size=48, channels=1, seed=0)
    predicted = []
    monkeypatch.setattr(E, "predict_outputs", lambda model, images, *rest: predicted.append(len(images))
                        or (np.full((len(images), 7), 1 / 7), None))
    metrics = runs.write_results(tmp_path, model, "simple_cnn", L.EMOTIONS_7, split, split.subset([0, 1]),
                                 [{"epoch": 1, "loss": 1.0}], {})
    assert predicted == [4, 2]  # val, then test; the report and the "not sure" threshold reuse them
    assert metrics["val"]["samples"] == 4 and metrics["test"]["samples"] == 2
    assert (tmp_path / "model.json").is_file() and "test split" in (tmp_path / "report.txt").read_text()


def test_no_shared_images_gives_empty_metrics():
    split = _split(["contempt", "contempt"], L.EMOTIONS_8)
    result = E.evaluate_split(PixelModel(L.EMOTIONS_7), split, L.EMOTIONS_7)
    assert result["left_out"] == 2 and result["samples"] == 0 and result["accuracy"] == 0.0
    assert result["labels"] == list(L.EMOTIONS_7) and np.asarray(result["confusion"]).sum() == 0


# ---------------------------------------------------------------------------------------------------
# predict_proba and flip TTA
# ---------------------------------------------------------------------------------------------------

class LeftRightModel:
    """Fake model: class 0 when the left half is brighter than the right, class 1 otherwise."""

    output_shape = (None, 3)

    def predict_on_batch(self, batch):
        batch = np.asarray(batch)
        half = batch.shape[2] // 2
        left = batch[:, :, :half].mean(axis=(1, 2, 3))
        right = batch[:, :, half:].mean(axis=(1, 2, 3))
        out = np.zeros((len(batch), 3), dtype=np.float32)
        out[np.arange(len(batch)), np.where(left > right, 0, 1)] = 1
        return out


def test_flip_tta_averages_the_horizontal_mirror():
    images = np.zeros((5, 6, 6, 1), dtype=np.uint8)
    images[:, :, :3] = 200  # bright left half, dark right: the mirror is the opposite
    images[:, :3, :] += 10  # brighter top: a vertical flip would not change the answer
    model = LeftRightModel()
    plain = E.predict_proba(model, images)
    np.testing.assert_array_equal(plain, np.tile([1, 0, 0], (5, 1)))
    tta = E.predict_proba(model, images, batch_size=2, flip_tta=True)
    np.testing.assert_allclose(tta, np.tile([0.5, 0.5, 0], (5, 1)))


def test_flip_tta_with_a_real_model(tiny_model_dir):
    loaded = M.load_model(tiny_model_dir)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 48, 48, 1), dtype=np.uint8)
    direct = np.asarray(loaded.model.predict_on_batch(images.astype("float32")))
    mirror = np.asarray(loaded.model.predict_on_batch(images[:, :, ::-1].astype("float32")))
    plain = E.predict_proba(loaded.model, images, batch_size=3)  # batches of 3, 3, 1 keep their order
    np.testing.assert_allclose(plain, direct, rtol=1e-5, atol=1e-6)
    tta = E.predict_proba(loaded.model, images, batch_size=3, flip_tta=True)
    np.testing.assert_allclose(tta, (direct + mirror) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tta.sum(axis=1), 1.0, atol=1e-5)
    assert E.predict_proba(loaded.model, images[:0]).shape == (0, 7)

    split = D.Split(images, np.arange(7), L.EMOTIONS_7, [f"{i}.png" for i in range(7)])
    result = E.evaluate_split(loaded.model, split, loaded.labels, flip_tta=True)
    assert result["flip_tta"] is True and result["samples"] == 7
    assert result["accuracy"] == pytest.approx(np.mean(tta.argmax(axis=1) == np.arange(7)))


def test_plots_return_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = E.compute_metrics([0, 1, 1], [0, 1, 0], ["a", "b"])["confusion"]
    figure = E.plot_confusion(confusion, ["a", "b"])
    figure.savefig(tmp_path / "confusion.png")
    curves = E.plot_curves([{"epoch": 0, "loss": 1.0, "val_loss": 1.2, "accuracy": 0.3, "val_accuracy": 0.2},
                            {"epoch": 1, "loss": 0.8, "val_loss": 1.0, "accuracy": 0.4, "val_accuracy": 0.3}])
    curves.savefig(tmp_path / "curves.png")
    assert len(curves.axes) == 2 and len(curves.axes[0].lines) == 2
    plt.close("all")
    assert (tmp_path / "confusion.png").stat().st_size > 0


# ---------------------------------------------------------------------------------------------------
# The evaluate CLI on a tiny FER2013-layout folder
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_fer2013(fer2013_dir, tmp_path_factory) -> Path:
    """3 test faces per class copied from FER2013 into the Kaggle folder layout."""
    root = tmp_path_factory.mktemp("fer2013-tiny")
    for emotion in L.EMOTIONS_7:
        target = root / "test" / emotion
        target.mkdir(parents=True)
        for source in sorted((fer2013_dir / "test" / emotion).iterdir())[:3]:
            shutil.copy(source, target / source.name)
    return root


def test_cli_evaluate_json_contract(tiny_model_dir, tiny_fer2013, tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "emolib", "evaluate", "--model", str(tiny_model_dir), "--dataset", "fer2013",
         "--data", str(tiny_fer2013), "--split", "test", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "EMOLIB_CACHE": str(tmp_path / "cache")})
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-3000:]
    result = json.loads(process.stdout[process.stdout.index("{"):])
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1"):
        assert isinstance(result[key], float) and 0 <= result[key] <= 1, key
    assert result["labels"] == list(L.EMOTIONS_7)
    assert set(result["per_class"]) == set(L.EMOTIONS_7)
    for name, scores in result["per_class"].items():
        assert set(scores) == {"precision", "recall", "f1", "support"}, name
        assert scores["support"] == 3
    confusion = np.asarray(result["confusion"])
    assert confusion.shape == (7, 7) and confusion.sum() == 21
    assert confusion.sum(axis=1).tolist() == [3] * 7

    # the same numbers as evaluating in this process
    loaded = M.load_model(tiny_model_dir)
    split = D.load_split("fer2013", tiny_fer2013, "test", 48, 1, cache=False)
    here = E.evaluate_split(loaded.model, split, loaded.labels)
    assert result["accuracy"] == pytest.approx(here["accuracy"])
    assert result["confusion"] == here["confusion"]


def test_cli_evaluate_missing_model_is_an_error(tiny_fer2013, tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "emolib", "evaluate", "--model", str(tmp_path / "nothing"), "--dataset",
         "fer2013", "--data", str(tiny_fer2013), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert process.returncode == 2
    assert "no model file" in process.stderr


def test_one_epoch_learning_curves_are_visible_points():
    import matplotlib.pyplot as plt

    figure = E.plot_curves([{"epoch": 0, "loss": 1.2, "val_loss": 1.4, "accuracy": 0.4, "val_accuracy": 0.3}])
    lines = [line for ax in figure.axes for line in ax.get_lines()]
    assert len(lines) == 4 and all(line.get_marker() == "o" for line in lines)
    plt.close(figure)

"""emolib.models: backbone registry, in-graph preprocessing, weights policy, augmentation, model files.

Everything runs at small input sizes with ``weights=None`` (no download): a few seconds per test on a CPU.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from emolib import labels as L
from emolib import models as M

pytestmark = pytest.mark.backend  # run on every backend (see the Makefile)

SMALL = 32  # the smallest side every registered backbone accepts (vgg16/resnet50 pool 5 times)
to_numpy = keras.ops.convert_to_numpy  # np.asarray fails on a PyTorch tensor that requires grad


def _faces(n: int, size: int = SMALL, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------
# Registry: every backbone builds, trains one step and outputs probabilities
# ---------------------------------------------------------------------------------------------------

def test_registry_has_the_designed_backbones():
    assert {"simple_cnn", "compact_vgg", "vgg16", "resnet50"} <= set(M.BACKBONES)
    with pytest.raises(ValueError, match="registered"):
        M.get_backbone("no_such_net")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", sorted(M.BACKBONES))
def test_backbone_builds_and_takes_one_train_step(name, channels):
    """Every backbone trains on gray and on colour faces (e.g. RAF-DB in colour on simple_cnn)."""
    backbone = M.get_backbone(name)
    num_classes, batch = 5, 4
    keras.utils.set_random_seed(0)
    model = M.build_model(name, num_classes=num_classes, input_size=SMALL, channels=channels, weights=None,
                          seed=0)
    assert model.input_shape == (None, SMALL, SMALL, channels)
    assert model.output_shape == (None, num_classes)
    # the backbone's own preprocessing sits in the graph, right after the input
    preprocess = model.get_layer("preprocess")
    assert isinstance(preprocess, M.FacePreprocess)
    assert preprocess.mode == backbone.preprocessing
    # scratch nets are built for the channels given; pretrained ones always see RGB
    first_conv = next(layer for layer in M.leaf_layers(model) if isinstance(layer, keras.layers.Conv2D))
    assert first_conv.kernel.shape[2] == (3 if backbone.pretrained else channels)

    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    x = _faces(batch, channels=channels)
    y = np.arange(batch) % num_classes
    trainable_before = [to_numpy(w) for w in model.trainable_weights]
    loss = float(np.asarray(model.train_on_batch(x, y)).ravel()[0])
    assert np.isfinite(loss)
    after = model.trainable_weights
    changed = [not np.array_equal(a, to_numpy(b)) for a, b in zip(trainable_before, after, strict=True)]
    assert any(changed), "a train step changed no weight"

    assert np.asarray(model.predict_on_batch(x)).shape == (batch, num_classes)
    # probabilities: checked in training mode, since an untrained deep net's BatchNorm layers (moving
    # statistics still at 0 / 1) can overflow in inference mode on raw-scale inputs (resnet50 → NaN)
    probs = to_numpy(model(x.astype("float32"), training=True))
    assert probs.shape == (batch, num_classes)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_colour_faces_reach_a_scratch_net_in_colour():
    """simple_cnn given RGB keeps the colour: faces that differ only in hue get different outputs."""
    model = M.build_model("simple_cnn", num_classes=3, input_size=SMALL, channels=3, seed=0)
    inside = keras.Model(model.input, model.get_layer("preprocess").output)
    red, blue = np.zeros((1, SMALL, SMALL, 3), np.uint8), np.zeros((1, SMALL, SMALL, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    np.testing.assert_allclose(to_numpy(inside(red)), red / 255.0, rtol=1e-6)
    assert not np.allclose(np.asarray(model.predict_on_batch(red)), np.asarray(model.predict_on_batch(blue)))


def test_gray_input_on_rgb_backbone_is_repeated_in_graph():
    model = M.build_model("vgg16", num_classes=3, input_size=SMALL, channels=1, weights=None)
    assert model.input_shape == (None, SMALL, SMALL, 1)
    probs = np.asarray(model.predict_on_batch(_faces(2, channels=1)))
    assert probs.shape == (2, 3)


def test_bad_channels_and_pretrained_scratch_nets_are_refused():
    with pytest.raises(ValueError, match="channels"):
        M.build_model("simple_cnn", channels=2)
    with pytest.raises(ValueError, match="from scratch"):
        M.build_model("compact_vgg", weights="imagenet")


# ---------------------------------------------------------------------------------------------------
# Preprocessing in the graph
# ---------------------------------------------------------------------------------------------------

def _expected(x: np.ndarray, mode: str) -> np.ndarray:
    """Hand-written reference for FacePreprocess on RGB 0..255 values."""
    x = x.astype(np.float64)
    if mode == "unit":
        return x / 255.0
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "caffe":  # RGB -> BGR, minus the ImageNet BGR mean
        return x[..., ::-1] - np.array([103.939, 116.779, 123.68])
    return (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])


def _preprocess_model(mode: str, in_channels: int, channels: int) -> keras.Model:
    face = keras.Input((4, 4, in_channels))
    return keras.Model(face, M.FacePreprocess(mode, channels)(face))


@pytest.mark.parametrize("mode", M.PREPROCESSING_MODES)
def test_face_preprocess_values_for_uint8_rgb_faces(mode):
    face = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    face[..., 0], face[..., 1], face[..., 2] = 200, 100, 0  # distinct channels expose BGR order
    face[0, 0, 0] = (255, 0, 17)
    out = np.asarray(_preprocess_model(mode, 3, 3).predict_on_batch(face))
    np.testing.assert_allclose(out, _expected(face, mode), rtol=1e-5, atol=1e-4)
    # and Keras' own reference implementation agrees
    reference = keras.applications.imagenet_utils.preprocess_input(face.astype("float32"), mode=mode) \
        if mode != "unit" else face / 255.0
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mode", M.PREPROCESSING_MODES)
def test_face_preprocess_repeats_gray_to_rgb(mode):
    gray = np.array([0, 64, 128, 255] * 4, dtype=np.uint8).reshape(1, 4, 4, 1)
    out = np.asarray(_preprocess_model(mode, 1, 3).predict_on_batch(gray))
    assert out.shape == (1, 4, 4, 3)
    np.testing.assert_allclose(out, _expected(np.repeat(gray, 3, axis=-1), mode), rtol=1e-5, atol=1e-4)


def test_face_preprocess_gray_stays_gray_and_rejects_unknown_modes():
    gray = np.full((1, 4, 4, 1), 51, dtype=np.uint8)
    out = np.asarray(_preprocess_model("unit", 1, 1).predict_on_batch(gray))
    assert out.shape == (1, 4, 4, 1)
    np.testing.assert_allclose(out, 0.2, rtol=1e-6)
    with pytest.raises(ValueError, match="preprocessing mode"):
        M.FacePreprocess("imagenet")


def test_built_model_scales_raw_faces_itself():
    """A model fed the same face as uint8 0..255 sees exactly its backbone's preprocessing."""
    model = M.build_model("vgg16", num_classes=3, input_size=SMALL, channels=3, weights=None)
    inside = keras.Model(model.input, model.get_layer("preprocess").output)
    face = _faces(1, channels=3)
    np.testing.assert_allclose(np.asarray(inside.predict_on_batch(face)), _expected(face, "caffe"),
                               rtol=1e-5, atol=1e-3)


# ---------------------------------------------------------------------------------------------------
# Weights policy and fine-tuning
# ---------------------------------------------------------------------------------------------------

def test_imagenet_offline_gives_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network in this test")

    import keras.src.utils.file_utils as file_utils

    monkeypatch.setattr(file_utils, "get_file", offline)
    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(RuntimeError) as info:
        M.build_model("vgg16", num_classes=7, input_size=SMALL, weights="imagenet")
    message = str(info.value)
    assert "VGG16" in message
    assert "path" in message.lower() and "weights=" in message  # tells how to use a local file
    assert isinstance(info.value.__cause__, OSError)


def test_missing_local_weights_file(tmp_path):
    missing = tmp_path / "vgg16_notop.h5"
    with pytest.raises(FileNotFoundError, match="vgg16_notop.h5"):
        M.build_model("vgg16", num_classes=7, input_size=SMALL, weights=str(missing))


def test_local_weights_file_is_loaded(tmp_path):
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(SMALL, SMALL, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    base.save_weights(path)
    model = M.build_model("vgg16", num_classes=7, input_size=SMALL, weights=str(path))
    for name in ("block1_conv1", "block5_conv3"):
        ours, theirs = model.get_layer(name).get_weights(), base.get_layer(name).get_weights()
        for loaded, saved in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(loaded, saved)


def test_train_base_k_freezes_all_but_the_last_k_blocks():
    model = M.build_model("vgg16", num_classes=4, input_size=SMALL, weights=None, train_base=2)
    base_layers = [layer for layer in model.layers if layer.name.startswith("block")]
    assert len(base_layers) == 18
    for layer in base_layers:
        expect = layer.name.startswith(("block4_", "block5_"))
        assert layer.trainable == expect, layer.name
    head = [layer for layer in model.layers[model.layers.index(model.get_layer("block5_pool")) + 1:]]
    assert head and all(layer.trainable for layer in head)  # the head always trains
    # only block4/5 convs (2 × 6 weights) and the head (dense 2, BN 2, predictions 2) are trainable
    assert len(model.trainable_weights) == 12 + 6

    # one train step leaves the frozen blocks exactly as they were
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    frozen = [to_numpy(w) for w in model.get_layer("block1_conv1").weights]
    tuned = [to_numpy(w) for w in model.get_layer("block5_conv3").weights]
    model.train_on_batch(_faces(4, channels=3), np.arange(4))
    for before, after in zip(frozen, model.get_layer("block1_conv1").weights, strict=True):
        np.testing.assert_array_equal(before, to_numpy(after))
    tuned_after = model.get_layer("block5_conv3").weights
    assert any(not np.array_equal(b, np.array(a)) for b, a in zip(tuned, tuned_after, strict=True))


@pytest.mark.parametrize("train_base, trainable_blocks", [(True, 5), (False, 0), (0, 0), (1, 1)])
def test_train_base_all_none_or_one(train_base, trainable_blocks):
    model = M.build_model("vgg16", num_classes=4, input_size=SMALL, weights=None, train_base=train_base)
    trainable = {layer.name.split("_")[0] for layer in model.layers
                 if layer.name.startswith("block") and layer.trainable}
    assert trainable == {f"block{i}" for i in range(6 - trainable_blocks, 6)}


# ---------------------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------------------

def test_augmentation_switches():
    assert M.as_augmentation(None).layers() == []
    assert M.as_augmentation(False).layers() == []
    assert M.as_augmentation(True) == M.Augmentation.standard()
    assert len(M.as_augmentation({"flip": True, "zoom": 0.1}).layers()) == 2
    assert len(M.Augmentation.standard().layers(seed=1)) == 4  # flip, affine, contrast, erasing
    assert M.augment_layer(False) is None and M.augment_layer({"flip": False}) is None
    assert len(M.augment_layer({"flip": True, "contrast": 0.1}).steps) == 2
    with pytest.raises(ValueError, match=r"unknown augmentation switches \['blur'\].*'erasing'"):
        M.as_augmentation({"flip": True, "blur": 0.5})


def test_cli_augmentation_switches(capsys):
    from emolib.commands import build_parser
    from emolib.train import parse_augmentation

    assert parse_augmentation("flip, zoom=0.05,erasing=0") == {"flip": True, "zoom": 0.05, "erasing": 0.0}
    with pytest.raises(ValueError, match="'zoom=lots'"):
        parse_augmentation("flip,zoom=lots")
    base = ["train", "--dataset", "fer2013", "--data", "d"]
    with pytest.raises(SystemExit):  # the flag's error names the switch, as argparse prints it
        build_parser().parse_args([*base, "--augment", "flip,zoom=lots"])
    assert "argument --augment: 'zoom=lots': expected NAME or NAME=NUMBER" in capsys.readouterr().err
    assert build_parser().parse_args(base).augment is False
    assert build_parser().parse_args([*base, "--augment"]).augment is True
    assert build_parser().parse_args([*base, "--augment", "flip,zoom=0.1"]).augment == {"flip": True,
                                                                                         "zoom": 0.1}


def test_augmentation_changes_training_outputs_not_inference():
    augmented = M.build_model("simple_cnn", num_classes=7, input_size=SMALL, augment=True, seed=3)
    plain = M.build_model("simple_cnn", num_classes=7, input_size=SMALL, augment=False, seed=3)
    assert len(augmented.layers) == len(plain.layers) + 1  # one layer holds the four augmentations
    plain.set_weights(augmented.get_weights())  # augmentation layers have no weights
    x = _faces(8, seed=5).astype("float32")

    # the augmentation part of the graph: identity at inference, random in training
    augment_only = keras.Model(augmented.input, augmented.get_layer("preprocess").input)
    np.testing.assert_array_equal(to_numpy(augment_only(x, training=False)), x)
    trained_view = to_numpy(augment_only(x, training=True))
    assert trained_view.shape == x.shape
    assert not np.allclose(trained_view, x)

    # whole model: inference is deterministic and equals the same net without augmentation
    first = to_numpy(augmented(x, training=False))
    np.testing.assert_allclose(first, to_numpy(augmented(x, training=False)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(first, to_numpy(plain(x, training=False)), rtol=1e-5, atol=1e-6)

    # a plain call is inference too: no augmentation, no batch-norm statistics updated
    weights = augmented.get_weights()
    np.testing.assert_allclose(to_numpy(augmented(x)), first, rtol=1e-6, atol=1e-7)
    for before, after in zip(weights, augmented.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_augmentation_acts_in_fit():
    """fit passes training=True down to the augment layer: with a zero learning rate, the loss fit reports
    (augmented faces) differs from evaluate's (the same faces as they are)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    x = M.augment_layer({"flip": True, "translation": 0.3, "erasing": 1.0}, seed=0)(inputs)
    # scaled to 0..1 as in every emolib model: raw 0..255 values saturate the softmax, and then the two
    # losses agree or differ by chance
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(x))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    faces, labels = _faces(64, size=16).astype("float32"), np.arange(64) % 3
    fit_loss = model.fit(faces, labels, batch_size=64, epochs=1, verbose=0).history["loss"][0]
    assert fit_loss != pytest.approx(model.evaluate(faces, labels, verbose=0), rel=1e-3)


# ---------------------------------------------------------------------------------------------------
# Starting from a trained model
# ---------------------------------------------------------------------------------------------------

def test_transfer_weights_copies_everything_into_the_same_architecture():
    source = M.build_model("compact_vgg", num_classes=7, input_size=SMALL, augment=True, seed=1)
    target = M.build_model("compact_vgg", num_classes=7, input_size=SMALL, augment={"flip": True}, seed=2)
    x = _faces(6, seed=4)
    assert not np.allclose(to_numpy(source(x)), to_numpy(target(x)))
    assert M.transfer_weights(source, target) == []
    np.testing.assert_allclose(to_numpy(target(x)), to_numpy(source(x)), rtol=1e-5, atol=1e-6)


def test_transfer_weights_keeps_a_head_with_other_classes_fresh():
    source = M.build_model("compact_vgg", num_classes=7, input_size=SMALL, seed=1)
    target = M.build_model("compact_vgg", num_classes=8, input_size=SMALL, seed=2)
    fresh_head = target.layers[-1].get_weights()
    kept = M.transfer_weights(source, target)
    assert kept == [target.layers[-1].name]
    for before, after in zip(fresh_head, target.layers[-1].get_weights()):
        np.testing.assert_array_equal(before, after)
    for from_layer, to_layer in zip(source.layers[:-1], target.layers[:-1]):
        for a, b in zip(from_layer.get_weights(), to_layer.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_transfer_weights_refuses_another_architecture_or_an_adjusted_model():
    compact = M.build_model("compact_vgg", num_classes=7, input_size=SMALL)
    with pytest.raises(ValueError, match="another architecture"):
        M.transfer_weights(M.build_model("simple_cnn", num_classes=7, input_size=SMALL), compact)
    adjusted = M.with_logit_adjustment(compact, np.arange(7) * 0.1)
    with pytest.raises(ValueError, match="logit-adjusted"):
        M.transfer_weights(adjusted, M.build_model("compact_vgg", num_classes=7, input_size=SMALL))


# ---------------------------------------------------------------------------------------------------
# Model files and model cards
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compiled", [False, True])
def test_saved_model_and_card_round_trip(tmp_path, compiled):
    model = M.build_model("compact_vgg", num_classes=7, input_size=SMALL, augment=True, seed=0)
    if compiled:  # a trained model: saved for inference, without its optimizer
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.train_on_batch(_faces(4), np.arange(4))
    card = M.make_card(model, backbone="compact_vgg", labels=L.EMOTIONS_7, name="round-trip",
                       metrics={"test": {"accuracy": 0.5}})
    directory = M.save_model(model, tmp_path / "model", card)
    assert (directory / M.MODEL_FILE).is_file() and (directory / M.CARD_FILE).is_file()
    assert not [p for p in directory.iterdir() if p.name.startswith(".")], "temporary files left behind"

    saved_card = json.loads((directory / M.CARD_FILE).read_text())
    assert saved_card["labels"] == list(L.EMOTIONS_7)
    assert saved_card["input_size"] == [SMALL, SMALL] and saved_card["channels"] == 1
    assert saved_card["backbone"] == "compact_vgg" and saved_card["preprocessing"] == "unit"
    assert saved_card["parameters"] == model.count_params() > 0
    assert saved_card["emolib_version"] and "git_commit" in saved_card
    assert saved_card["metrics"] == {"test": {"accuracy": 0.5}} and saved_card["name"] == "round-trip"

    x = _faces(6, seed=1)
    expected = np.asarray(model.predict_on_batch(x))
    # a directory, the .keras file and the card all resolve to the same model
    for path in (directory, directory / M.MODEL_FILE, directory / M.CARD_FILE):
        loaded = M.load_model(path)
        assert loaded.labels == list(L.EMOTIONS_7)
        assert loaded.input_size == (SMALL, SMALL) and loaded.channels == 1
        assert isinstance(loaded.model.get_layer("preprocess"), M.FacePreprocess)
        predicted = np.asarray(loaded.model.predict_on_batch(x))
        np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)


def test_load_model_without_card_or_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        M.load_model(tmp_path)
    model = M.build_model("simple_cnn", num_classes=7, input_size=SMALL)
    model.save(tmp_path / M.MODEL_FILE)
    with pytest.raises(FileNotFoundError, match="no model card"):
        M.load_model(tmp_path)


def test_random_affine_resamples_once_and_only_while_training():
    x = _faces(4, seed=2).astype("float32")
    still = M.RandomAffine(0.0, 0.0, 0.0, seed=0)
    np.testing.assert_allclose(to_numpy(still(x, training=True)), x, atol=1e-3)  # no motion: identity
    moving = M.RandomAffine(rotation=0.05, zoom=0.1, translation=0.1, seed=0)
    np.testing.assert_array_equal(to_numpy(moving(x, training=False)), x)
    moved = to_numpy(moving(x, training=True))
    assert moved.shape == x.shape and not np.allclose(moved, x)
    assert moved.min() >= x.min() - 1e-3 and moved.max() <= x.max() + 1e-3  # bilinear: no overshoot


def test_saved_model_has_no_optimizer_state(tmp_path):
    import zipfile

    import h5py

    model = M.build_model("simple_cnn", num_classes=7, input_size=SMALL, seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.train_on_batch(_faces(4, seed=1).astype("float32"), np.arange(4))
    M.save_model(model, tmp_path, {"labels": list(range(7))})
    with zipfile.ZipFile(tmp_path / M.MODEL_FILE) as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5") as weights:
        assert "optimizer" not in weights or len(weights["optimizer"].get("vars", {})) == 0
    assert getattr(M.load_model(tmp_path).model, "optimizer", None) is None


def test_shipped_models_are_listed_and_loaded_by_name(tmp_path, monkeypatch):
    listed = M.list_models()
    assert "emolib-fer2013" in listed
    assert listed["emolib-fer2013"]["labels"] == list(L.EMOTIONS_7)
    assert 0.6 < listed["emolib-fer2013"]["metrics"]["test"]["accuracy"] < 1
    monkeypatch.chdir(tmp_path)  # a name is found from any directory
    model_file, _ = M.find_card("emolib-fer2013")
    assert model_file == M.SHIPPED_MODELS_DIR / "emolib-fer2013" / M.MODEL_FILE
    with pytest.raises(FileNotFoundError, match="no model file"):
        M.find_card("no-such-model")

"""Backbone registry, in-graph preprocessing and augmentation, model files with their model card.

Every emolib model takes raw faces (float or uint8 values in 0..255, shape ``(h, w, channels)``) and
returns class probabilities; the backbone's own preprocessing lives inside the graph, so a saved model
cannot be fed wrongly scaled input. Only ``keras.layers`` / ``keras.ops`` are used: the same code runs
on the TensorFlow, JAX and PyTorch backends.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers, ops

from emolib import __version__, paths
from emolib.files import atomic_path, write_json
from emolib.modelcards import (  # noqa: F401 - re-exported: the Keras-free facts about model files
    CARD_FILE,
    DEFAULT_MODEL_DIR,
    MODEL_FILE,
    SHIPPED_MODELS_DIR,
    VALENCE_AROUSAL,
    LoadedModel,
    find_card,
    list_models,
)
from emolib.registry import Registry, first_doc_line

# ---------------------------------------------------------------------------------------------------
# Preprocessing and augmentation layers
# ---------------------------------------------------------------------------------------------------

_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
PREPROCESSING_MODES = ("unit", "tf", "caffe", "torch")


@keras.saving.register_keras_serializable(package="emolib")
class FacePreprocess(layers.Layer):
    """Raw 0..255 faces → the backbone's input, inside the graph.

    Parameters
    ----------
    mode : {"unit", "tf", "caffe", "torch"}
        ``unit``: x/255; ``tf``: x/127.5 − 1; ``caffe``: RGB→BGR minus the ImageNet mean (VGG16,
        ResNet50); ``torch``: x/255 standardised by the ImageNet mean and std.
    channels : int
        Channels the backbone is built for (see :meth:`Backbone.network_channels`); a gray input is
        repeated to 3 channels where needed.
    """

    def __init__(self, mode: str = "unit", channels: int = 1, **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(f"preprocessing mode must be one of {PREPROCESSING_MODES}, not {mode!r}")
        self.mode = mode
        self.channels = channels

    def build(self, input_shape):
        if input_shape[-1] not in (1, self.channels):
            raise ValueError(f"a {self.channels}-channel backbone cannot take "
                             f"{input_shape[-1]}-channel faces")

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        if self.channels == 3 and x.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_BGR_MEAN, dtype=x.dtype)
        mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=x.dtype)
        std = ops.convert_to_tensor(_TORCH_STD, dtype=x.dtype)
        return (x / 255.0 - mean) / std

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "channels": self.channels}


@keras.saving.register_keras_serializable(package="emolib")
class LogitAdjustment(layers.Layer):
    """Class probabilities → softmax(log p / temperature + bias): a fixed rescaling of the decisions.

    With ``bias = −τ · log(prior)`` this is post-hoc logit adjustment (Menon et al., 2021), which
    trades a little accuracy on frequent classes for recall on rare ones; with a zero bias and a
    ``temperature`` it is temperature scaling (Guo et al., 2017), which calibrates the confidence and
    keeps every decision.
    """

    def __init__(self, bias, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.bias = [float(value) for value in bias]
        self.temperature = float(temperature)

    def call(self, probs):
        log_probs = ops.log(ops.maximum(ops.cast(probs, "float32"), 1e-7))
        return ops.softmax(log_probs / self.temperature + ops.convert_to_tensor(self.bias, dtype="float32"),
                           axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "bias": self.bias, "temperature": self.temperature}


def _with_probabilities(model: keras.Model, probabilities) -> keras.Model:
    """``model`` with ``probabilities`` in place of its first output (a valence-arousal output stays)."""
    outputs = [probabilities, *model.outputs[1:]]
    return keras.Model(model.inputs, outputs if len(outputs) > 1 else probabilities, name=model.name)


def with_logit_adjustment(model: keras.Model, bias) -> keras.Model:
    """``model`` followed by a :class:`LogitAdjustment` layer (same input, same weights)."""
    return _with_probabilities(model, LogitAdjustment(bias, name="logit_adjustment")(model.outputs[0]))


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """``model`` whose probabilities are temperature-scaled (a :class:`LogitAdjustment` with no bias)."""
    classes = model.outputs[0].shape[-1]
    return _with_probabilities(model, LogitAdjustment([0.0] * classes, temperature,
                                                      name="temperature_scaling")(model.outputs[0]))


@keras.saving.register_keras_serializable(package="emolib")
def masked_squared_error(y_true, y_pred):
    """The valence-arousal head's loss: mean squared error over each face's annotated values (a NaN
    target is not annotated and adds 0)."""
    y_true = ops.cast(y_true, "float32")
    known = ops.logical_not(ops.isnan(y_true))
    error = ops.where(known, ops.cast(y_pred, "float32") - ops.where(known, y_true, 0.0), 0.0)
    return ops.mean(ops.square(error), axis=-1)


def has_valence_arousal(model: keras.Model) -> bool:
    """Whether ``model`` has a valence-arousal output after its probabilities (``build_model``)."""
    return len(model.outputs) > 1


@keras.saving.register_keras_serializable(package="emolib")
class RandomAffine(layers.Layer):
    """Random rotation, zoom and shift in **one** resampling, while training only.

    Chaining Keras' RandomRotation, RandomZoom and RandomTranslation resamples a 48-pixel face three
    times and blurs it visibly, so training images stop looking like test images.

    Parameters
    ----------
    rotation : float
        Largest angle as a fraction of a full turn (Keras' convention: 0.05 is ±18°).
    zoom : float
        Largest relative change of scale (0.1 is ±10 %).
    translation : float
        Largest shift as a fraction of the side.
    """

    def __init__(self, rotation: float = 0.0, zoom: float = 0.0, translation: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.translation, self.seed = rotation, zoom, translation, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training:
            return x
        height, width = x.shape[1], x.shape[2]
        u = keras.random.uniform((ops.shape(x)[0], 4), minval=-1.0, maxval=1.0, seed=self.seed_generator)
        angle = u[:, 0] * self.rotation * 2 * math.pi
        scale = 1.0 + u[:, 1] * self.zoom
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        cx, cy = (width - 1) / 2, (height - 1) / 2
        shift_x, shift_y = u[:, 2] * self.translation * width, u[:, 3] * self.translation * height
        zeros = ops.zeros_like(cos)
        # output pixel (x, y) samples input ((a0 x + a1 y + a2), (b0 x + b1 y + b2))
        transform = ops.stack([cos, -sin, cx - cos * cx + sin * cy + shift_x,
                               sin, cos, cy - sin * cx - cos * cy + shift_y, zeros, zeros], axis=1)
        return ops.image.affine_transform(x, transform, interpolation="bilinear", fill_mode="nearest")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom,
                "translation": self.translation, "seed": self.seed}


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation switches (all off = no augmentation).

    Angles and shifts are fractions as in Keras: ``rotation=0.05`` is ±18°, ``translation=0.1``
    is ±10 % of the side.
    """

    flip: bool = False
    rotation: float = 0.0
    zoom: float = 0.0
    translation: float = 0.0
    contrast: float = 0.0
    erasing: float = 0.0  # probability of blanking a random rectangle (random erasing)

    @classmethod
    def standard(cls) -> Augmentation:
        """The augmentation emolib's default model was trained with."""
        return cls(flip=True, rotation=0.04, zoom=0.1, translation=0.08, contrast=0.15, erasing=0.25)

    def layers(self, seed: int | None = None) -> list[layers.Layer]:
        """Keras preprocessing layers for these switches (they act only while training)."""
        out: list[layers.Layer] = []
        if self.flip:
            out.append(layers.RandomFlip("horizontal", seed=seed))
        if self.rotation or self.zoom or self.translation:
            out.append(RandomAffine(self.rotation, self.zoom, self.translation, seed=seed))
        if self.contrast:
            out.append(layers.RandomContrast(self.contrast, value_range=(0, 255), seed=seed))
        if self.erasing:
            out.append(layers.RandomErasing(factor=self.erasing, value_range=(0, 255), seed=seed))
        return out


@keras.saving.register_keras_serializable(package="emolib")
class Augment(layers.Layer):
    """The augmentation layers of :class:`Augmentation` switches, active only with ``training=True``.

    Keras' random layers default to training mode, so inside a model they would also act on a plain
    ``model(faces)`` call (and put the next batch-norm layers in training mode too). Wrapped here,
    they act only when asked, as in ``fit``; predictions are the same however the model is called.
    """

    def __init__(self, switches: dict, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.switches, self.seed = dict(switches), seed
        self.steps = Augmentation(**self.switches).layers(seed)

    def build(self, input_shape):
        for step in self.steps:
            step.build(input_shape)

    def call(self, x, training=False):
        if not training:
            return x
        for step in self.steps:
            x = step(x, training=True)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "switches": self.switches, "seed": self.seed}


def as_augmentation(augment: bool | dict | Augmentation | None) -> Augmentation:
    """``True`` → the standard augmentation, ``False``/``None`` → none, a dict → those switches."""
    if isinstance(augment, Augmentation):
        return augment
    if augment is True:
        return Augmentation.standard()
    if not augment:
        return Augmentation()
    unknown = set(augment) - {field.name for field in dataclasses.fields(Augmentation)}
    if unknown:
        raise ValueError(f"unknown augmentation switches {sorted(unknown)}; the switches are "
                         f"{[field.name for field in dataclasses.fields(Augmentation)]}")
    return Augmentation(**augment)


def augment_layer(augment: bool | dict | Augmentation | None, seed: int | None = None) -> Augment | None:
    """The model's ``augment`` layer for these switches (see :func:`as_augmentation`); None if all are off."""
    augmentation = as_augmentation(augment)
    if augmentation == Augmentation():
        return None
    return Augment(dataclasses.asdict(augmentation), seed, name="augment")


# ---------------------------------------------------------------------------------------------------
# Backbone registry
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Backbone:
    """A registered backbone: its builder, the input it expects by default, and whether it has
    pretrained (RGB) weights."""

    name: str
    build: Callable  # (features_input, num_classes, weights, train_base) -> probabilities tensor
    input_size: int
    channels: int
    preprocessing: str
    description: str
    pretrained: bool = False

    def network_channels(self, channels: int) -> int:
        """Channels the network is built for, given faces of ``channels`` (1 or 3).

        A backbone trained from scratch is built for the channels given: its first convolution takes
        gray or colour, so colour faces keep their colour (converting them to gray would throw away
        what the user asked for) and gray faces cost no extra input channels. A pretrained backbone
        always gets 3 channels, a gray face repeated in the graph, since its ImageNet weights (and
        weight files saved from it, with or without ``weights=None``) expect RGB.
        """
        return 3 if self.pretrained else channels


BACKBONES: Registry = Registry("backbone")


def register_backbone(name: str, *, input_size: int, channels: int, preprocessing: str,
                      pretrained: bool = False):
    """Decorator: register ``build(x, num_classes, weights, train_base)`` under ``name``."""
    return BACKBONES.register(name, lambda build: Backbone(name, build, input_size, channels, preprocessing,
                                                           first_doc_line(build), pretrained))


def list_backbones() -> list[str]:
    """The names of the registered backbones."""
    return BACKBONES.names()


def get_backbone(name: str) -> Backbone:
    """The registered backbone called ``name`` (clear error listing the registered ones)."""
    return BACKBONES.lookup(name)


#: name of every backbone's last layer, the softmax classifier
_CLASSIFIER = "predictions"


def _classifier(x, num_classes: int):
    # float32 output so that mixed precision keeps a numerically safe softmax
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name=_CLASSIFIER)(x)


def _conv_bn(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


@register_backbone("simple_cnn", input_size=48, channels=1, preprocessing="unit")
def simple_cnn(x, num_classes, weights=None, train_base=True):
    """The original projects' from-scratch baseline: three conv/pool blocks and a dense head."""
    _no_pretrained("simple_cnn", weights)
    for i, filters in enumerate((32, 64, 128), start=1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{i}_conv")(x)
        x = layers.MaxPooling2D(name=f"block{i}_pool")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    return _classifier(x, num_classes)


@register_backbone("compact_vgg", input_size=48, channels=1, preprocessing="unit")
def compact_vgg(x, num_classes, weights=None, train_base=True, widths=(32, 64, 128, 256)):
    """A light VGG-style net (4 stages of 2 conv-BN-ReLU, ~1.2 M parameters) that trains on a CPU."""
    _no_pretrained("compact_vgg", weights)
    for stage, filters in enumerate(widths, start=1):
        x = _conv_bn(x, filters, f"stage{stage}_a")
        x = _conv_bn(x, filters, f"stage{stage}_b")
        x = layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
        x = layers.SpatialDropout2D(0.1, name=f"stage{stage}_drop")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    return _classifier(x, num_classes)


@register_backbone("vgg16", input_size=100, channels=3, preprocessing="caffe", pretrained=True)
def vgg16(x, num_classes, weights="imagenet", train_base=True):
    """VGG16 transfer as in the original: base unfrozen, Flatten → Dense 512 + BN → Dropout 0.5."""
    base = _application(keras.applications.VGG16, x, weights)
    _set_trainable_blocks(base, train_base, [f"block{i}_" for i in range(5, 0, -1)])
    y = layers.Flatten()(base.output)
    y = layers.Dense(512, activation="relu")(y)
    y = layers.BatchNormalization()(y)
    y = layers.Dropout(0.5)(y)
    return _classifier(y, num_classes)


@register_backbone("resnet50", input_size=224, channels=3, preprocessing="caffe", pretrained=True)
def resnet50(x, num_classes, weights="imagenet", train_base=2):
    """ResNet50 transfer: global pooling head; ``train_base`` = number of last stages fine-tuned."""
    base = _application(keras.applications.ResNet50, x, weights)
    _set_trainable_blocks(base, train_base, [f"conv{i}_" for i in range(5, 1, -1)])
    y = layers.GlobalAveragePooling2D()(base.output)
    y = layers.Dropout(0.3)(y)
    return _classifier(y, num_classes)


def _no_pretrained(name: str, weights) -> None:
    if weights not in (None, "none"):
        raise ValueError(f"{name} trains from scratch: use weights=None, not {weights!r}")


def _application(constructor, x, weights):
    """Build a keras.applications base on tensor ``x`` with emolib's weights policy."""
    if weights not in (None, "imagenet"):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        weights = str(path)
    try:
        return constructor(include_top=False, weights=weights, input_tensor=x)
    except Exception as error:
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"could not download the ImageNet weights of {constructor.__name__} ({error}). "
            "Offline, download the '..._notop.h5' file elsewhere and pass its path as weights=PATH, "
            "or put it in ~/.keras/models/; weights=None trains from scratch."
        ) from error


def _set_trainable_blocks(base: keras.Model, train_base: bool | int, block_prefixes: list[str]) -> None:
    """``True``: all layers train; ``False``/0: frozen; ``k``: only the last ``k`` blocks train."""
    if train_base is True:
        base.trainable = True
        return
    trainable = tuple(block_prefixes[: int(train_base)])
    for layer in base.layers:
        layer.trainable = bool(trainable) and layer.name.startswith(trainable)


def build_model(
    name: str,
    num_classes: int = 7,
    input_size: int | None = None,
    channels: int | None = None,
    weights: str | None = None,
    train_base: bool | int = True,
    augment: bool | dict | Augmentation | None = None,
    seed: int | None = None,
    valence_arousal: bool = False,
) -> keras.Model:
    """Build backbone ``name`` with in-graph preprocessing (and augmentation, if asked).

    Parameters
    ----------
    name : str
        A registered backbone (see ``BACKBONES``).
    num_classes : int
        Size of the softmax output.
    input_size, channels : int, optional
        Input side and channels (1 or 3) the model accepts (default: the backbone's own). Every
        backbone takes both: see :meth:`Backbone.network_channels` for how.
    weights : {None, "imagenet"} or path
        Pretrained weights for transfer backbones: ``"imagenet"`` downloads, a path loads a local file.
    train_base : bool or int
        Fine-tune all of the base (True), none (False), or its last ``k`` blocks.
    augment : bool, dict or Augmentation
        Training-time augmentation layers (``True`` = ``Augmentation.standard()``).
    valence_arousal : bool
        Also a second output, ``valence_arousal`` (2 tanh units on the features the classifier sees):
        the model returns ``[probabilities, valence_arousal]``.
    """
    backbone = get_backbone(name)
    size = input_size or backbone.input_size
    in_channels = channels or backbone.channels
    if in_channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {in_channels}")
    inputs = keras.Input((size, size, in_channels), name="face")
    x = inputs
    augmentation = augment_layer(augment, seed)
    if augmentation is not None:
        x = augmentation(x)
    x = FacePreprocess(backbone.preprocessing, backbone.network_channels(in_channels), name="preprocess")(x)
    outputs = backbone.build(x, num_classes, weights=weights, train_base=train_base)
    model = keras.Model(inputs, outputs, name=name)
    if not valence_arousal:
        return model
    features = model.get_layer(_CLASSIFIER).input  # every backbone ends in _classifier
    va = layers.Dense(2, activation="tanh", dtype="float32", name=VALENCE_AROUSAL)(features)
    return keras.Model(inputs, [outputs, va], name=name)


# ---------------------------------------------------------------------------------------------------
# Model files and model cards
# ---------------------------------------------------------------------------------------------------

def leaf_layers(model: keras.Model):
    """Every layer of ``model`` in graph order, the layers of nested models (a transfer base) included."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def transfer_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Copy ``source``'s weights into ``target``, layer by layer in graph order, where the shapes match.

    For fine-tuning a trained model with other settings (augmentation, learning rate) or on another
    dataset: a head with another number of classes keeps its fresh initialisation. Returns the names
    of the target's layers that were left as they were; a different architecture is an error. A
    temperature (no weights) is left behind; a logit adjustment is refused. A valence-arousal head that
    only one of the two models has is left out: a new one keeps its fresh initialisation.
    """
    if any(isinstance(layer, LogitAdjustment) and any(layer.bias) for layer in leaf_layers(source)):
        raise ValueError("cannot initialise from a logit-adjusted model: use the run it came from")
    both = has_valence_arousal(source) and has_valence_arousal(target)
    sources, targets = ([layer for layer in leaf_layers(model) if layer.weights
                         and (both or layer.name != VALENCE_AROUSAL)] for model in (source, target))
    fresh = [] if both or not has_valence_arousal(target) else [VALENCE_AROUSAL]
    if len(sources) != len(targets):
        raise ValueError(f"cannot initialise from a model of another architecture "
                         f"({len(sources)} layers with weights, this one has {len(targets)})")
    kept = []
    for from_layer, to_layer in zip(sources, targets):
        weights = from_layer.get_weights()
        if [w.shape for w in weights] == [tuple(w.shape) for w in to_layer.weights]:
            to_layer.set_weights(weights)
        else:
            kept.append(to_layer.name)
    if len(kept) == len(targets):
        raise ValueError("no layer of the source model fits this one: is it the same backbone?")
    return kept + fresh


def git_commit(directory: Path | None = paths.REPO_DIR) -> str | None:
    """The current git commit of ``directory`` (default: emolib's source checkout), or None outside one."""
    if directory is None:
        return None
    try:
        out = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def make_card(model: keras.Model, *, backbone: str, labels, preprocessing: str | None = None,
              **fields) -> dict:
    """A model card: what a user needs to feed the model and judge it (extra ``fields`` are kept)."""
    _, height, width, channels = model.input_shape
    return {
        "backbone": backbone,
        "labels": list(labels),
        "input_size": [int(height), int(width)],
        "channels": int(channels),
        "input": "raw face pixels 0..255, RGB or gray as 'channels' says; preprocessing is in the graph",
        "preprocessing": preprocessing or get_backbone(backbone).preprocessing,
        "parameters": int(model.count_params()),
        "emolib_version": __version__,
        "git_commit": git_commit(),
        "keras_backend": keras.backend.backend(),
        **fields,
    }


def inference_copy(model: keras.Model) -> keras.Model:
    """An uncompiled copy of ``model`` with its weights, built outside any distribution scope: an
    ordinary one-device model (clone_model would compile the copy)."""
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def save_model(model: keras.Model, directory: str | os.PathLike, card: dict) -> Path:
    """Write ``model.keras`` and its ``model.json`` card into ``directory``, each atomically.

    The model is saved for inference, without optimizer state (a third of the size; training
    checkpoints keep the optimizer).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if getattr(model, "optimizer", None) is not None:  # an uncompiled model has no optimizer attribute
        model = inference_copy(model)
    with atomic_path(directory / MODEL_FILE) as tmp:
        model.save(tmp)
    write_json(directory / CARD_FILE, card)
    return directory


def load_model(path: str | os.PathLike | None = None) -> LoadedModel:
    """Load a model and its card (default: the model shipped with emolib), for inference."""
    model_file, card_file = find_card(path or DEFAULT_MODEL_DIR)
    model = keras.saving.load_model(model_file, compile=False)
    return LoadedModel(model, json.loads(card_file.read_text(encoding="utf-8")), model_file)

"""Backbone registry and :func:`build_model`: a backbone behind the in-graph preprocessing (and
augmentation), with an optional valence-arousal head; and what relies on that architecture (the
layers of a built model, weights moved from one model into another).

Every emolib model takes raw faces (float or uint8 values in 0..255, shape ``(h, w, channels)``) and
returns class probabilities; the backbone's own preprocessing lives inside the graph, so a saved model
cannot be fed wrongly scaled input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

from emolib.layers import Augmentation, FacePreprocess, LogitAdjustment, augment_layer
from emolib.modelcards import VALENCE_AROUSAL
from emolib.registry import Registry, first_doc_line


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


def has_valence_arousal(model: keras.Model) -> bool:
    """Whether ``model`` has a valence-arousal output after its probabilities (``build_model``)."""
    return len(model.outputs) > 1


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

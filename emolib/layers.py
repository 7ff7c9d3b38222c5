"""emolib's Keras layers, saved inside every model (registered as ``emolib>Name``): the in-graph
preprocessing, the fixed rescaling of probabilities (logit adjustment, temperature scaling), the
valence-arousal head's masked loss, and the training-time augmentation.

Only ``keras.layers`` / ``keras.ops`` are used: the same code runs on the TensorFlow, JAX and PyTorch
backends.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import keras
from keras import layers, ops

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

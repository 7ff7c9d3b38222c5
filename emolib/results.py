"""The result of a prediction, declared once.

:class:`PredictionResult` is the result dict that :class:`emolib.predict.EmotionPredictor` returns for
an image (docs/architecture.md), :class:`ImageRecord` one line of ``emolib predict DIR --out``. The
REST API's response models are these classes, the Parquet schema of folder predictions is derived
from them (:func:`arrow_schema`), and the tests check every result against them.
"""

from __future__ import annotations

import types
import typing

from pydantic import BaseModel, Field

#: a face's fields that only some models or requests give (absent otherwise)
OPTIONAL_FACE_FIELDS = ("valence", "arousal", "saliency")


class Box(BaseModel):
    x: int
    y: int
    w: int
    h: int


class Saliency(BaseModel):
    png: str = Field(description="base64 PNG: the face crop the model saw, with its saliency map over it")
    size: list[int] = Field(description="[height, width] of that PNG in pixels")


class FacePrediction(BaseModel):
    emotion: str = Field(description="canonical English emotion name, e.g. 'happy'")
    label: str = Field(description="display name (French by default), e.g. 'Joie'")
    emoji: str
    confidence: float = Field(description="probability of the predicted emotion, in percent (0-100)")
    uncertain: bool = Field(False, description="true when the confidence is below the model's 'not sure' "
                                               "threshold (its card's uncertain_below, chosen on validation)")
    box: Box = Field(description="face box in image pixels")
    probabilities: dict[str, float] = Field(description="probability (0-1) of every emotion")
    valence: float | None = Field(None, description="how pleasant the face looks, -1..1: only from a model "
                                                    "with a valence-arousal head (absent otherwise)")
    arousal: float | None = Field(None, description="how excited (calm -1 .. excited 1): only from a model "
                                                    "with a valence-arousal head (absent otherwise)")
    saliency: Saliency | None = Field(None, description="only with explain=true")


class PredictionResult(BaseModel):
    faces_detected: int
    detector: str = Field(description="detector that ran: yunet, haar, a plug-in's name, or none")
    predictions: list[FacePrediction]


class ImageRecord(BaseModel):
    """One image of a folder's predictions: the result, or why the image could not be used."""

    path: str
    error: str | None = Field(description="why the image could not be used; null when it was")
    faces_detected: int | None
    detector: str | None
    predictions: list[FacePrediction]


def arrow_schema(model: type[BaseModel] = ImageRecord, exclude: tuple[str, ...] = ("saliency",)):
    """The pyarrow schema of ``model``'s fields (less ``exclude``, at any depth): every field nullable,
    ``dict[str, float]`` as a map (label sets differ between models)."""
    import pyarrow as pa

    return pa.schema([(name, _arrow_type(field.annotation, exclude))
                      for name, field in model.model_fields.items() if name not in exclude])


def _arrow_type(annotation, exclude: tuple[str, ...]):
    import pyarrow as pa

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):  # X | None: nullable, as every Arrow field is
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _arrow_type(inner, exclude)
    if origin is list:
        return pa.list_(_arrow_type(args[0], exclude))
    if origin is dict:
        return pa.map_(_arrow_type(args[0], exclude), _arrow_type(args[1], exclude))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct([(name, _arrow_type(field.annotation, exclude))
                          for name, field in annotation.model_fields.items() if name not in exclude])
    return {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}[annotation]

"""Model files: a model directory's ``model.keras`` and its ``model.json`` card, written atomically
and loaded for inference (the Keras-free facts about them are in :mod:`emolib.modelcards`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

import emolib.layers  # noqa: F401 - registers the custom objects that saved models hold
from emolib import __version__
from emolib.backbones import get_backbone
from emolib.files import atomic_path, write_json
from emolib.modelcards import CARD_FILE, DEFAULT_MODEL_DIR, MODEL_FILE, LoadedModel, find_card
from emolib.provenance import git_commit


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

"""Model runtimes: load a saved model for inference with Keras or with ONNX Runtime (no Keras at all).

Each runtime turns a model (directory, model file, card or shipped name) into a
:class:`emolib.modelcards.LoadedModel` whose ``model`` has ``predict_on_batch(faces) -> probabilities``
(raw 0..255 float32 faces in, as the Keras graph takes them: its preprocessing is in the ONNX graph
too). ``onnx`` needs only ``onnxruntime`` and numpy, so a process that predicts with it never imports
TensorFlow, JAX, PyTorch or Keras.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np

from emolib import install, modelcards
from emolib.files import sha256_file
from emolib.registry import Registry

RUNTIMES = Registry("runtime")
#: What ``runtime`` may say: a registered runtime, or "auto" (see :func:`default_runtime`).
AUTO = "auto"


def register_runtime(name: str):
    """Decorator: ``load(path) -> LoadedModel`` becomes the runtime ``name``."""
    return RUNTIMES.register(name)


def list_runtimes() -> list[str]:
    """The registered runtimes: ``keras``, ``onnx``."""
    return RUNTIMES.names()


def get_runtime(name: str):
    """The loader of runtime ``name`` (a ValueError naming the known ones otherwise)."""
    return RUNTIMES.lookup(name)


class OnnxModel:
    """An ONNX Runtime session with the one method the predictor calls, ``predict_on_batch``.

    Parameters
    ----------
    path : path
        The ``.onnx`` file (one input: faces ``(n, h, w, c)`` float32; outputs: probabilities, and
        for a model with a valence-arousal head its (n, 2) values, as Keras gives them).
    threads : int or None
        Intra-op threads (None: ONNX Runtime's default, one per core).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def predict_on_batch(self, faces: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """Class probabilities ``(n, classes)`` of raw faces ``(n, h, w, c)``; for a two-output model
        the list ``[probabilities, valence_arousal]`` (see :func:`emolib.modelcards.split_outputs`)."""
        outputs = self.session.run(None, {self.input_name: np.asarray(faces, dtype=np.float32)})
        return outputs[0] if len(outputs) == 1 else outputs


@register_runtime("keras")
def load_keras(path: str | os.PathLike | None) -> modelcards.LoadedModel:
    """The Keras model (``model.keras``), on the venv's Keras backend (the full install's)."""
    install.require_full_install("the Keras runtime (what runs a model without an up-to-date model.onnx)")
    from emolib import models  # imports Keras and its backend

    return models.load_model(path)


@register_runtime("onnx")
def load_onnx(path: str | os.PathLike | None) -> modelcards.LoadedModel:
    """The ONNX model (``model.onnx`` beside ``model.keras``) on ONNX Runtime's CPU provider."""
    model_file, card = onnx_model_file(path)
    return modelcards.LoadedModel(OnnxModel(model_file), card, model_file)


def onnx_model_file(path: str | os.PathLike | None) -> tuple[Path, dict]:
    """The model's ONNX file and card.

    Raises
    ------
    FileNotFoundError
        When the model has no ONNX file (or card).
    ValueError
        When the ONNX file was made from another ``model.keras`` than the one beside it (its card's
        ``onnx.keras_sha256``): the model changed since the export.
    """
    model_file, card_file = modelcards.find_card(_onnx_source(path), modelcards.ONNX_FILE)
    card = json.loads(card_file.read_text(encoding="utf-8"))
    keras_file = model_file.parent / card.get("model_file", modelcards.MODEL_FILE)
    made_from = card.get("onnx", {}).get("keras_sha256")
    if keras_file.is_file() and made_from != sha256_file(keras_file):
        raise ValueError(f"{model_file} was not made from the {keras_file.name} beside it: run "
                         f"`emolib export {model_file.parent} --format onnx` again")
    return model_file, card


def onnxruntime_installed() -> bool:
    """Whether ``onnxruntime`` can be imported here (checked without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def default_runtime(path: str | os.PathLike | None) -> str:
    """``onnx`` when onnxruntime is installed and the model has an up-to-date ONNX file (see
    :func:`onnx_model_file`), else ``keras``."""
    if not onnxruntime_installed():
        return "keras"
    try:
        onnx_model_file(path)
    except (FileNotFoundError, ValueError):
        return "keras"
    return "onnx"


def load(path: str | os.PathLike | None = None, runtime: str = AUTO) -> modelcards.LoadedModel:
    """Load the model at ``path`` (None: the shipped default) with ``runtime`` (``auto``: see
    :func:`default_runtime`)."""
    name = default_runtime(path) if runtime == AUTO else runtime
    return get_runtime(name)(path)


def _onnx_source(path: str | os.PathLike | None):
    """A model given by its ``.keras`` file means the ONNX file beside it."""
    path = modelcards.DEFAULT_MODEL_DIR if path is None else path
    return os.fspath(path)[:-len(".keras")] + ".onnx" if os.fspath(path).endswith(".keras") else path

"""Model cards without Keras: which models exist and what each one knows (where they are: emolib.paths).

A saved emolib model is a directory holding the model file and its card (``model.json``: labels, input,
metrics …, see docs/architecture.md). Everything here reads only those JSON files, so the dashboard and
the CLI can list models without importing Keras or its backend; :mod:`emolib.modelfiles` loads them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolib import paths
from emolib.paths import DEFAULT_MODEL_DIR, SHIPPED_MODELS_DIR  # noqa: F401 - the locations live in paths

MODEL_FILE = "model.keras"
CARD_FILE = "model.json"
#: The same model as ONNX (``emolib export MODEL --format onnx``), beside ``model.keras``.
ONNX_FILE = "model.onnx"
#: Name of the second output of a model trained with valence and arousal (``TrainConfig.heads``):
#: (n, 2) values in [-1, 1], valence then arousal, after the class probabilities.
VALENCE_AROUSAL = "valence_arousal"


def split_outputs(outputs) -> tuple:
    """A model call's outputs → ``(probabilities, valence_arousal or None)`` as NumPy arrays.

    An expression model gives its probabilities alone; a model with a valence-arousal head gives the
    list ``[probabilities, valence_arousal]`` (Keras' ``predict_on_batch`` and the ONNX runtime alike).
    """
    if isinstance(outputs, (list, tuple)):
        if len(outputs) == 1:
            return np.asarray(outputs[0]), None
        return np.asarray(outputs[0]), np.asarray(outputs[1])
    return np.asarray(outputs), None


def model_search_dirs() -> tuple[Path, ...]:
    """Where model choosers (the dashboard's settings, the API's ``model`` parameter) look for models:
    the shipped models and :func:`emolib.paths.runs_dir` (read now: ``$EMOLIB_RUNS`` may change)."""
    return (SHIPPED_MODELS_DIR, paths.runs_dir())


def read_card(directory: str | os.PathLike) -> dict | None:
    """The card of the model in ``directory``, or None when it is missing or unreadable."""
    try:
        card = json.loads((Path(directory) / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def is_model_dir(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a readable card and the model file it names."""
    card = read_card(directory)
    return card is not None and (Path(directory) / card.get("model_file", MODEL_FILE)).is_file()


def list_models() -> dict[str, dict]:
    """The shipped models by name: their classes, the scores their cards record, and their path."""
    found = {}
    for card_file in sorted(SHIPPED_MODELS_DIR.glob(f"*/{CARD_FILE}")):
        card = json.loads(card_file.read_text(encoding="utf-8"))
        found[card_file.parent.name] = {"labels": card["labels"], "metrics": card.get("metrics", {}),
                                        "path": str(card_file.parent)}
    return found


def find_models(roots: Iterable[str | os.PathLike]) -> list[Path]:
    """Directories under ``roots`` (searched recursively) that hold a complete model (see
    :func:`is_model_dir`), in path order."""
    found: list[Path] = []
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        for card in sorted(root.rglob(CARD_FILE)):
            if card.parent not in found and is_model_dir(card.parent):
                found.append(card.parent)
    return found


@dataclass
class LoadedModel:
    """A loaded model (anything with ``predict_on_batch``: Keras, or :class:`emolib.runtimes.OnnxModel`),
    its card and the model file it came from."""

    model: object
    card: dict
    path: Path

    @property
    def labels(self) -> list[str]:
        return self.card["labels"]

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.card["input_size"])

    @property
    def channels(self) -> int:
        return int(self.card["channels"])


def find_card(path: str | os.PathLike, model_file: str = MODEL_FILE) -> tuple[Path, Path]:
    """Resolve a model directory, model file, card ``.json`` or a shipped model's name (see
    :func:`list_models`) to (model file, card file); ``model_file`` is the file looked for in a
    directory (``model.keras``, or :data:`ONNX_FILE`)."""
    path = Path(path).expanduser()
    if not path.exists() and len(path.parts) == 1 and (SHIPPED_MODELS_DIR / path).is_dir():
        path = SHIPPED_MODELS_DIR / path
    if path.is_dir():
        file, card_file = path / model_file, path / CARD_FILE
    elif path.suffix == ".json":
        card_file = path
        named = json.loads(path.read_text()).get("model_file", MODEL_FILE)
        file = path.parent / (named if model_file == MODEL_FILE else model_file)
    else:
        file = path
        sibling = path.with_suffix(".json")
        card_file = sibling if sibling.is_file() else path.parent / CARD_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no model file at {file}")
    if not card_file.is_file():
        raise FileNotFoundError(f"no model card next to {file} (expected {card_file})")
    return file, card_file

"""Export a finished run as a shippable model directory, or a model as ONNX (checked against Keras)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emolib import paths
from emolib.files import atomic_path, sha256_file, write_atomic, write_json
from emolib.modelcards import ONNX_FILE, split_outputs
from emolib.models import CARD_FILE, MODEL_FILE, LoadedModel, load_model
from emolib.runs import finished_card

#: FER2013 test faces the ONNX file is checked on against Keras (a seeded sample).
CHECK_FACES = 1000

RUN_FILES = (MODEL_FILE, "metrics.json", "history.csv", "report.txt", "curves.png", "confusion.png")


def export_run(run_dir: str | os.PathLike, target: str | os.PathLike, name: str | None = None,
               training_commands: list[str] | None = None) -> Path:
    """Copy a finished run's model and evaluation files into ``target`` and write its card.

    The card is the run's card plus ``name`` (default: the target folder's name), ``source_run``
    and, when given, ``training_commands``. Each file is written atomically (never half a file);
    an interrupted export is finished by running it again. Other files in ``target`` (a
    hand-written README) are left alone.
    """
    run_dir, target = Path(run_dir), Path(target)
    card = finished_card(run_dir)
    (target / ONNX_FILE).unlink(missing_ok=True)  # it was made from the model replaced now
    for file_name in RUN_FILES:
        source = run_dir / file_name
        if source.is_file():
            write_atomic(target / file_name, source.read_bytes())
    card.update(name=name or target.name, source_run=run_dir.name)
    if training_commands:
        card["training_commands"] = list(training_commands)
    write_json(target / CARD_FILE, card)
    return target


def export_onnx(model: str | os.PathLike | None, out: str | os.PathLike | None = None,
                faces: np.ndarray | None = None, check_count: int = CHECK_FACES) -> tuple[Path, dict]:
    """Write ``model`` (directory, ``.keras`` file or shipped name) as ONNX, with its card.

    The ONNX graph is the Keras graph, in-graph preprocessing included (raw 0..255 faces in,
    probabilities out; batch size free), converted by tf2onnx (``keras.Model.export(format="onnx")``,
    TensorFlow backend). ``out``: a directory (``model.onnx`` and the card ``model.json`` in it), an
    ``.onnx`` path (the card beside it as ``.json``), or None: ``model.onnx`` beside ``model.keras``.
    The card gains ``"onnx"``: file, opset, converter, the sha256 of the ``.keras`` file it was made
    from (a changed model no longer runs on a stale ONNX file) and the agreement with Keras on
    ``faces`` (see :func:`check_onnx`; default: ``check_count`` faces of :func:`check_faces`).

    Returns
    -------
    (onnx path, the check's dict)
    """
    import keras
    import onnx
    import tf2onnx

    loaded = load_model(model)
    out = loaded.path.parent if out is None else Path(out)
    onnx_path = out if out.suffix == ".onnx" else out / ONNX_FILE
    card_path = onnx_path.with_suffix(".json") if out.suffix == ".onnx" else onnx_path.parent / CARD_FILE
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    shape = (None, *loaded.input_size, loaded.channels)
    spec = keras.InputSpec(shape=shape, dtype="float32", name=loaded.model.inputs[0].name)
    with atomic_path(onnx_path) as tmp:
        loaded.model.export(str(tmp), format="onnx", verbose=False, input_signature=[spec])
    check = check_onnx(loaded, onnx_path, check_faces(loaded, check_count) if faces is None else faces)
    opset = max(entry.version for entry in onnx.load(str(onnx_path)).opset_import
                if entry.domain in ("", "ai.onnx"))
    card = {**loaded.card, "onnx": {"file": onnx_path.name, "opset": int(opset),
                                    "converter": f"tf2onnx {tf2onnx.__version__}",
                                    "keras_sha256": sha256_file(loaded.path), "check": check}}
    write_json(card_path, card)
    return onnx_path, check


def check_faces(loaded: LoadedModel, count: int = CHECK_FACES, seed: int = 0) -> np.ndarray:
    """``count`` FER2013 test faces (a seeded sample) at the model's input size and channels."""
    from emolib import data

    root = paths.shared_dir() / "data" / "fer2013"
    if not root.is_dir():
        raise FileNotFoundError(f"the ONNX check needs FER2013 test faces at {root} (set EMOLIB_SHARED)")
    split = data.load_split("fer2013", root, "test", size=loaded.input_size[0], channels=loaded.channels)
    rows = np.sort(np.random.default_rng(seed).choice(len(split), min(count, len(split)), replace=False))
    return np.asarray(split.images[rows])


def check_onnx(loaded: LoadedModel, onnx_path: str | os.PathLike, faces: np.ndarray) -> dict:
    """Keras vs ONNX Runtime on ``faces``: ``faces``, ``max_abs_diff`` (largest probability
    difference), ``argmax_agreement`` (share of faces given the same class) and, for a model with a
    valence-arousal head, ``valence_arousal_max_abs_diff``."""
    from emolib.runtimes import OnnxModel

    faces = np.asarray(faces, dtype=np.float32)
    expected, expected_va = split_outputs(loaded.model.predict_on_batch(faces))
    got, got_va = split_outputs(OnnxModel(onnx_path).predict_on_batch(faces))
    if (expected_va is None) != (got_va is None):
        raise ValueError(f"{onnx_path} has {'no' if got_va is None else 'a'} valence-arousal output, "
                         "the Keras model " + ("has one" if got_va is None else "none"))
    check = {"faces": len(faces), "max_abs_diff": float(np.abs(expected - got).max()),
             "argmax_agreement": float(np.mean(expected.argmax(1) == got.argmax(1)))}
    if expected_va is not None:
        check["valence_arousal_max_abs_diff"] = float(np.abs(expected_va - got_va).max())
    return check

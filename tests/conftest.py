"""Shared test fixtures: where ../shared is, and a tiny saved model for inference tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import emolib  # noqa: F401  (first: it sets this venv's Keras backend before any test imports Keras)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOLIB_SHARED", REPO.parent / "shared")).resolve()


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips (or fails in CI) when the shared folder is truly absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared data missing in CI: {path} (set EMOLIB_SHARED)")
        pytest.skip(f"shared data not found: {path} (set EMOLIB_SHARED)")
    return path


@pytest.fixture(scope="session")
def fer2013_dir() -> Path:
    return shared_path("data", "fer2013")


@pytest.fixture(scope="session")
def ferplus_dir() -> Path:
    return shared_path("data", "ferplus")


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    return shared_path("data", "photos")


@pytest.fixture(scope="session")
def yunet_path() -> Path:
    return shared_path("models", "face_detection_yunet_2023mar.onnx")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """An untrained compact model saved with its card, for tests that need any emolib model."""
    from emolib import labels, models

    model = models.build_model("simple_cnn", num_classes=7, input_size=48, channels=1, seed=0)
    directory = tmp_path_factory.mktemp("tiny_model")
    card = models.make_card(model, backbone="simple_cnn", labels=labels.EMOTIONS_7, name="tiny-test")
    return models.save_model(model, directory, card)


@pytest.fixture(scope="session")
def tiny_onnx_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model with its ``model.onnx`` (``emolib export --format onnx``, checked on random faces)."""
    import shutil

    import numpy as np

    from emolib.runs.export import export_onnx

    directory = tmp_path_factory.mktemp("tiny_onnx") / "model"
    shutil.copytree(tiny_model_dir, directory)
    faces = np.random.default_rng(0).integers(0, 256, (16, 48, 48, 1)).astype(np.uint8)
    export_onnx(directory, faces=faces)
    return directory


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory, photos_dir) -> Path:
    """Two faces (one in a sub-folder), an image without a face, an unreadable .jpg and a text file."""
    import shutil

    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("photo_folder")
    shutil.copy(photos_dir / "grace_hopper.jpg", root / "a-face.jpg")
    Image.fromarray(np.full((160, 200, 3), 128, np.uint8)).save(root / "b-no-face.png")
    (root / "c-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("not an image")
    (root / "sub").mkdir()
    shutil.copy(photos_dir / "grace_hopper.jpg", root / "sub" / "d-face.jpg")
    return root


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """A local Ray head with 2 CPUs for the whole session, joined by this process; yields its address."""
    from emolib.cluster import connect, local_cluster

    with local_cluster(2, tmp_path_factory.mktemp("ray") / "head.log") as head:
        ray = connect(head.address)
        yield head.address
        ray.shutdown()

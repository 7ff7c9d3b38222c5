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
def ray_local():
    """A local Ray with 2 CPUs for the whole session (shut down at the end); yields its address."""
    from emolib.cluster import connect

    ray = connect(num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()

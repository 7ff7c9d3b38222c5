"""Shared test fixtures: where ../shared is, a tiny saved model for inference tests, Chromium and the
dashboard's server for the browser tests, and the GPUs this machine has. Plain helpers: helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

# GPU tests share one card: each process takes GPU memory as it needs it, not all of it at start
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import helpers  # noqa: E402
import pytest  # noqa: E402

import emolib  # noqa: E402, F401  (first of emolib: it sets this venv's Keras backend before any test imports Keras)

SHARED = Path(os.environ.get("EMOLIB_SHARED", helpers.REPO.parent / "shared")).resolve()


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips (or fails in CI) when the shared folder is truly absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        helpers.missing(f"shared data {path}", "set EMOLIB_SHARED")
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


@pytest.fixture(scope="module")
def chromium_path() -> str:
    """The Chromium executable (see :func:`helpers.chromium_executable`)."""
    return helpers.chromium_executable()


@pytest.fixture(scope="module")
def playwright_driver(chromium_path):
    """Playwright's driver, for tests that launch ``chromium_path``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def chromium(playwright_driver, chromium_path, camera_video):
    """Chromium whose fake camera plays ``camera_video`` (a fixture of the test's module)."""
    browser = playwright_driver.chromium.launch(executable_path=chromium_path, headless=True,
                                                args=helpers.fake_camera_args(camera_video))
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def dashboard_model(request) -> Path:
    """The shipped model when it exists, else a tiny untrained one (the page only needs some model)."""
    from emolib.widgets.app import DEFAULT_MODEL_DIR

    if (DEFAULT_MODEL_DIR / "model.keras").is_file() and (DEFAULT_MODEL_DIR / "model.json").is_file():
        return DEFAULT_MODEL_DIR
    return request.getfixturevalue("tiny_model_dir")


@pytest.fixture(scope="module")
def voila_server(tmp_path_factory, dashboard_model, chromium_path) -> helpers.Server:
    """The dashboard (:func:`helpers.dashboard_server`) with ``dashboard_model``, for this module."""
    with helpers.dashboard_server(tmp_path_factory.mktemp("voila") / "voila.log", dashboard_model) as server:
        yield server


@pytest.fixture(scope="session")
def machine_gpus() -> list[tuple[int, int] | None]:
    """The compute capability of each GPU this venv's backend has here (:func:`helpers.backend_gpus`);
    none on a machine without the NVIDIA driver."""
    gpus = helpers.backend_gpus()
    assert not gpus or helpers.nvidia_smi_gpus(), f"the backend sees GPUs {gpus} but nvidia-smi lists none"
    return gpus


@pytest.fixture(scope="session")
def machine_precision(machine_gpus) -> str:
    """The dtype policy ``precision="auto"`` must choose here: float32 on CPU, else the GPUs' own."""
    from emolib import devices

    if not machine_gpus:
        return "float32"
    return devices.choose_precision("auto", [devices.Device("GPU", f"gpu:{index}", capability)
                                             for index, capability in enumerate(machine_gpus)])

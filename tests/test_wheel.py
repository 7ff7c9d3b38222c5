"""emolib outside its checkout: the wheel, installed the ways people install it, finds its shipped models.

- into a fresh venv, its dependencies lent by this venv (a ``.pth`` file): offline and fast;
- with ``pip install --target DIR`` (then ``PYTHONPATH=DIR``) and ``pip install --user``, where nothing
  lands under ``sys.prefix``: the shipped models are package data, found beside the package wherever it is;
- the light install: a fresh venv with the wheel and only its own dependencies, installed by pip (from
  a wheelhouse that the package index fills once): it predicts and serves with ONNX Runtime, and
  refuses the workbook's commands with the command that installs them.

The wheel is built once, without build isolation, from a copy of the sources.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest
from helpers import Server, free_port

from emolib import install, paths

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
#: What only the full install brings (import names): none of it may be in the light install.
WORKBOOK_MODULES = ("keras", "tensorflow", "jax", "torch", "pandas", "matplotlib", "sklearn", "seaborn",
                    "yaml", "ipywidgets", "voila", "papermill")


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    process = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600, **kwargs)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return process


def clean_env(**extra) -> dict:
    """The environment without PYTHONPATH, so the installed emolib is imported, not the checkout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, **extra}


def pip(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """This venv's pip, blind to the checkout (on PYTHONPATH, it would count emolib as installed)."""
    return run(sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check",
               env=env or clean_env())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The emolib wheel, built from a copy of the sources (the checkout stays free of build files)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO / "emolib", source / "emolib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, source / name)
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", root / "dist", source)
    (built,) = (root / "dist").glob("emolib-*.whl")
    return built


def fresh_venv(path: Path) -> Path:
    """A venv without pip (this interpreter's pip installs into it with ``--python``)."""
    run(sys.executable, "-m", "venv", "--without-pip", path)
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def installed_venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed, its dependencies lent by this venv."""
    venv = tmp_path_factory.mktemp("venv")
    python = fresh_venv(venv)
    pip("--python", python, "install", "--no-deps", wheel)
    site_packages = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                         .stdout.strip())
    (site_packages / "emolib-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.fixture(scope="module")
def light_venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel and its light dependencies only, as ``pip install emolib`` makes it.

    pip installs them offline from a wheelhouse in emolib's cache (``$EMOLIB_CACHE/wheelhouse``), which
    ``pip download`` fills from the package index when it lacks one (the first run, a new dependency).
    """
    venv = tmp_path_factory.mktemp("light")
    python = fresh_venv(venv)
    wheelhouse = paths.cache_dir() / "wheelhouse"
    offline = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile", "--no-index",
               "--find-links", wheelhouse, wheel]
    installed = subprocess.run([str(c) for c in offline], capture_output=True, env=clean_env(), timeout=600)
    if installed.returncode:
        pip("download", "-d", wheelhouse, wheel)
        for copied in wheelhouse.glob("emolib-*.whl"):  # the wheel under test is never taken from there
            copied.unlink()
        run(*offline, env=clean_env())
    return venv


def predict_json(command: list, cwd: Path, env: dict) -> dict:
    """The JSON line ``emolib predict … --json`` printed last."""
    return json.loads(run(*command, "--json", cwd=cwd, env=env).stdout.strip().splitlines()[-1])


def assert_a_shipped_model_result(result: dict) -> None:
    assert result["faces_detected"] >= 1
    face = result["predictions"][0]
    assert {"emotion", "label", "emoji", "confidence", "uncertain", "box", "probabilities"} <= set(face)
    shipped = json.loads((paths.DEFAULT_MODEL_DIR / "model.json").read_text(encoding="utf-8"))["labels"]
    assert 0 < face["confidence"] <= 100 and sorted(face["probabilities"]) == sorted(shipped)
    assert face["emotion"] in shipped and set(face["box"]) == {"x", "y", "w", "h"}


def test_the_installed_package_finds_its_shipped_models_and_runs_outside_site_packages(installed_venv,
                                                                                       tmp_path):
    code = ("import json, emolib, emolib.paths as p; print(json.dumps({'package': emolib.__file__, "
            "'repo': str(p.REPO_DIR), 'model': str(p.DEFAULT_MODEL_DIR), 'runs': str(p.runs_dir())}))")
    found = json.loads(run(installed_venv / "bin" / "python", "-c", code, cwd=tmp_path,
                           env=clean_env(EMOLIB_RUNS="")).stdout)
    venv = str(installed_venv.resolve())
    assert found["package"].startswith(venv) and found["repo"] == "None"
    package = Path(found["package"]).parent
    assert Path(found["model"]) == package / "shipped_models" / "emolib-ferplus"
    assert all((Path(found["model"]) / name).is_file() for name in ("model.keras", "model.onnx"))
    assert (package / "widgets" / "emolib.css").is_file() and (package / "widgets" / "webcam.js").is_file()
    assert found["runs"] == str(tmp_path / "results" / "runs"), "runs go to the current directory"


def test_emolib_predict_from_the_wheel_on_a_photo_in_another_directory(installed_venv, photos_dir,
                                                                       tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(photos_dir / "grace_hopper.jpg", elsewhere / "grace_hopper.jpg")
    result = predict_json([installed_venv / "bin" / "emolib", "predict", "grace_hopper.jpg"], cwd=elsewhere,
                          env=clean_env(KERAS_BACKEND="tensorflow"))
    assert result["image"] == "grace_hopper.jpg"
    assert_a_shipped_model_result(result)


def test_a_target_install_finds_its_shipped_models(wheel, photos_dir, tmp_path):
    # `pip install --target DIR` puts nothing under sys.prefix (data files would be lost there)
    target = tmp_path / "target"
    pip("install", "--no-deps", "--target", target, wheel)
    env = clean_env(PYTHONPATH=str(target))
    code = "import emolib.paths as p; print(p.DEFAULT_MODEL_DIR)"
    found = Path(run(sys.executable, "-c", code, cwd=tmp_path, env=env).stdout.strip())
    assert found == target / "emolib" / "shipped_models" / "emolib-ferplus"
    result = predict_json([sys.executable, "-m", "emolib", "predict", photos_dir / "grace_hopper.jpg"],
                          cwd=tmp_path, env=env)
    assert_a_shipped_model_result(result)


def test_a_user_install_finds_its_shipped_models(wheel, tmp_path):
    # `pip install --user` (the usual way on a shared cluster) also lands outside sys.prefix; the base
    # interpreter of this venv takes it (a venv refuses --user), into a user base of the test's own
    base_python = getattr(sys, "_base_executable", sys.executable)
    env = clean_env(PYTHONUSERBASE=str(tmp_path / "user"))
    env.pop("PYTHONNOUSERSITE", None)
    pip("--python", base_python, "install", "--user", "--no-deps", wheel, env=env)
    code = "import emolib.paths as p; print(p.DEFAULT_MODEL_DIR)"
    found = Path(run(base_python, "-c", code, cwd=tmp_path, env=env).stdout.strip())
    assert found.is_relative_to(tmp_path / "user") and found.name == "emolib-ferplus"
    assert (found / "model.onnx").is_file() and (found / "model.json").is_file()


def test_the_light_install_has_none_of_the_workbook(light_venv):
    code = ("import importlib.util, json; print(json.dumps([m for m in " + repr(WORKBOOK_MODULES)
            + " if importlib.util.find_spec(m)]))")
    assert json.loads(run(light_venv / "bin" / "python", "-c", code, env=clean_env()).stdout) == []
    found = json.loads(run(light_venv / "bin" / "emolib", "doctor", "--json", env=clean_env()).stdout)
    assert found["install"] == "light" and found["default_model"]["onnx"]


def test_the_light_install_predicts_a_photo_and_a_folder(light_venv, photos_dir, tmp_path):
    emolib = light_venv / "bin" / "emolib"
    result = predict_json([emolib, "predict", photos_dir / "grace_hopper.jpg"], cwd=tmp_path, env=clean_env())
    assert result["image"] == str(photos_dir / "grace_hopper.jpg")
    assert_a_shipped_model_result(result)
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copyfile(photos_dir / "grace_hopper.jpg", folder / "grace_hopper.jpg")
    run(emolib, "predict", folder, "--out", "predictions.jsonl", cwd=tmp_path, env=clean_env())
    (record,) = map(json.loads, (tmp_path / "predictions.jsonl").read_text(encoding="utf-8").splitlines())
    assert record["path"] == str(folder / "grace_hopper.jpg") and record["error"] is None
    assert_a_shipped_model_result(record)


def test_the_light_install_serves_the_api(light_venv, photos_dir, tmp_path):
    port = free_port()
    command = [light_venv / "bin" / "emolib", "serve", "--port", str(port)]
    with Server(command, port, tmp_path / "serve.log", env=clean_env(), cwd=tmp_path, start_s=120) as server:
        assert httpx.get(f"{server.url}/test", timeout=10).json() == {"status": "ok"}
        photo = (photos_dir / "grace_hopper.jpg").read_bytes()
        response = httpx.post(f"{server.url}/predict", timeout=60,
                              files={"file": ("grace_hopper.jpg", photo, "image/jpeg")})
        assert response.status_code == 200, response.text
        assert_a_shipped_model_result(response.json())
        health = httpx.get(f"{server.url}/health", timeout=10).json()
        assert health["keras_backend"] is None and health["model"]["name"] == "emolib-ferplus"


@pytest.mark.parametrize("args", [["train", "--dataset", "fer2013", "--data", "x"],
                                  ["predict", "photo.jpg", "--runtime", "keras"]],
                         ids=["train", "keras-runtime"])
def test_the_light_install_names_the_full_install_for_the_rest(light_venv, tmp_path, args):
    process = subprocess.run([str(light_venv / "bin" / "emolib"), *args], cwd=tmp_path, env=clean_env(),
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 2, process.stderr[-3000:]
    assert f"needs the full install: {install.FULL_INSTALL}" in process.stderr
    assert "missing here: keras" in process.stderr and "Traceback" not in process.stderr

"""emolib outside its checkout: the wheel, installed into a fresh venv, predicts with its shipped model.

Offline and fast: the wheel is built without build isolation and installed without dependencies; a
``.pth`` file lends the fresh venv this interpreter's site-packages (the project's .venv) for them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from emolib import paths

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    process = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600, **kwargs)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return process


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory) -> Path:
    """A fresh venv with the emolib wheel (built from a copy of the sources) installed in it."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("emolib", "models"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "--disable-pip-version-check", "-w", root / "dist", source)
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    (wheel,) = (root / "dist").glob("emolib-*.whl")
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-deps",
        "--disable-pip-version-check", wheel)
    site_packages = Path(run(venv / "bin" / "python", "-c",
                             "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site_packages / "emolib-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def clean_env(**extra) -> dict:
    """The environment without PYTHONPATH, so the installed emolib is imported, not the checkout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, **extra}


def test_the_installed_package_finds_its_shipped_models_and_runs_outside_site_packages(installed_venv,
                                                                                       tmp_path):
    code = ("import json, emolib, emolib.paths as p; print(json.dumps({'package': emolib.__file__, "
            "'repo': str(p.REPO_DIR), 'model': str(p.DEFAULT_MODEL_DIR), 'runs': str(p.runs_dir())}))")
    found = json.loads(run(installed_venv / "bin" / "python", "-c", code, cwd=tmp_path,
                           env=clean_env(EMOLIB_RUNS="")).stdout)
    venv = str(installed_venv.resolve())
    assert found["package"].startswith(venv) and found["repo"] == "None"
    assert found["model"].startswith(venv) and (Path(found["model"]) / "model.keras").is_file()
    package = Path(found["package"]).parent
    assert (package / "widgets" / "emolib.css").is_file() and (package / "widgets" / "webcam.js").is_file()
    assert found["runs"] == str(tmp_path / "results" / "runs"), "runs go to the current directory"


def test_emolib_predict_from_the_wheel_on_a_photo_in_another_directory(installed_venv, photos_dir,
                                                                       tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(photos_dir / "grace_hopper.jpg", elsewhere / "grace_hopper.jpg")
    process = run(installed_venv / "bin" / "emolib", "predict", "grace_hopper.jpg", "--json", cwd=elsewhere,
                  env=clean_env(KERAS_BACKEND="tensorflow"))
    result = json.loads(process.stdout.strip().splitlines()[-1])
    assert result["image"] == "grace_hopper.jpg"
    assert result["faces_detected"] >= 1
    face = result["predictions"][0]
    shipped = json.loads((paths.DEFAULT_MODEL_DIR / "model.json").read_text(encoding="utf-8"))["labels"]
    assert 0 < face["confidence"] <= 100 and sorted(face["probabilities"]) == sorted(shipped)

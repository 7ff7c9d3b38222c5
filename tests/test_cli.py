"""The ``emolib`` command, run as users run it: ``python -m emolib ...`` in a subprocess."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from emolib import backend, commands, doctor
from emolib.commands import doctor as doctor_command

REPO = Path(__file__).resolve().parents[1]


def emolib(*args: str, env: dict | None = None, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in {**os.environ, **(env or {})}.items() if key not in unset}
    return subprocess.run([sys.executable, "-m", "emolib", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=environ)


def test_help_lists_every_subcommand():
    process = emolib("--help")
    assert process.returncode == 0, process.stderr
    for command in commands.COMMANDS:
        assert command in process.stdout, f"{command} missing from --help"


def test_every_subcommand_has_a_command_module_with_run():
    # the modules are imported lazily by main; here the table, the parser and the modules agree
    import importlib

    parser = commands.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == set(commands.COMMANDS)
    for command in commands.COMMANDS:
        assert callable(importlib.import_module(f"emolib.commands.{command}").run), command


#: the shortest command line that parses, for each subcommand
MINIMAL_ARGS = {"data": ["--dataset", "fer2013", "--data", "x"],
                "train": ["--dataset", "fer2013", "--data", "x"],
                "evaluate": ["--dataset", "fer2013", "--data", "x"], "adjust": ["run"], "calibrate": ["run"],
                "average": ["run"], "ensemble": ["run"], "export": ["run", "--to", "x"], "predict": ["x.jpg"],
                "video": ["x.mp4", "--out", "x.csv"], "experiments": ["summary"], "serve": [], "doctor": [],
                "backend": [], "dashboard": []}


@pytest.mark.parametrize("error", [RuntimeError("offline: no ImageNet weights"), OSError("disk full"),
                                   ValueError("bad value")])
def test_every_command_turns_an_error_into_one_line_and_exit_2(error, monkeypatch, capsys):
    import importlib

    assert set(MINIMAL_ARGS) == set(commands.COMMANDS)
    for command in commands.COMMANDS:
        module = importlib.import_module(f"emolib.commands.{command}")

        def fail(args, error=error):
            raise error

        monkeypatch.setattr(module, "run", fail)
        assert commands.main([command, *MINIMAL_ARGS[command]]) == 2, command
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines == [f"emolib {command}: error: {error}"], command


def test_no_subcommand_is_a_usage_error():
    process = emolib()
    assert process.returncode == 2
    assert "usage: emolib" in process.stderr


#: this venv's own backend, as a plain ``bin/python`` call finds it (no KERAS_BACKEND set)
VENV_BACKEND, VENV_BACKEND_SOURCE = backend.configured_backend(environ={})
#: a backend whose library this venv lacks
MISSING_BACKEND = next(name for name in backend.BACKEND_LIBRARIES if name not in backend.installed_backends())


@pytest.fixture(scope="module")
def doctor_json(tmp_path_factory) -> dict:
    # a keras.json naming another backend must not matter: the venv's own backend runs
    keras_home = tmp_path_factory.mktemp("keras_home")
    (keras_home / "keras.json").write_text(json.dumps({"backend": MISSING_BACKEND}))
    process = emolib("doctor", "--json", env={"KERAS_HOME": str(keras_home)}, unset=("KERAS_BACKEND",))
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-2000:]
    return json.loads(process.stdout)


@pytest.mark.backend
def test_doctor_json_reports_the_venvs_backend_and_the_machines_gpus(doctor_json, machine_gpus):
    assert doctor_json["backend"] == VENV_BACKEND
    assert doctor_json["backend_source"] == VENV_BACKEND_SOURCE
    if (Path(sys.prefix) / backend.BACKEND_FILE).is_file():  # a venv built by make setup records it
        assert doctor_json["backend_source"] == str(Path(sys.prefix) / backend.BACKEND_FILE)
    assert doctor_json["backend_version"] and doctor_json["backend_version"][0].isdigit()
    assert doctor_json["gpu"] is bool(machine_gpus)
    assert len(doctor_json["gpu_names"]) == len(machine_gpus)
    kinds = [device["type"] for device in doctor_json["devices"]]
    assert kinds.count("GPU") == len(machine_gpus)
    if not machine_gpus:  # (JAX lists only its GPUs where it has some)
        assert "CPU" in kinds
    assert doctor_json["errors"] == []


@pytest.mark.backend
def test_a_missing_backend_fails_doctor_and_commands_with_the_fix(tmp_path):
    process = emolib("doctor", "--json", env={"KERAS_BACKEND": MISSING_BACKEND})
    assert process.returncode == 1, process.stdout[-2000:] + process.stderr[-2000:]
    errors = json.loads(process.stdout)["errors"]
    assert any(f"make setup BACKEND={MISSING_BACKEND}" in error for error in errors), errors
    process = emolib("evaluate", "--dataset", "fer2013", "--data", str(tmp_path), "--json",
                     env={"KERAS_BACKEND": MISSING_BACKEND})
    assert process.returncode == 1
    assert f"make setup BACKEND={MISSING_BACKEND}" in process.stderr and "Traceback" not in process.stderr


def test_the_backend_rule_env_then_venv_file_then_first_installed(tmp_path):
    assert backend.configured_backend({"KERAS_BACKEND": "torch"}, tmp_path, ["jax"]) == ("torch",
                                                                                       "KERAS_BACKEND")
    assert backend.configured_backend({}, tmp_path, ["tensorflow", "jax"])[0] == "tensorflow"
    assert backend.configured_backend({}, tmp_path, ["jax"])[0] == "jax"
    name, source = backend.configured_backend({}, tmp_path, [])
    assert name is None and "none of tensorflow, jax, torch installed" in source
    assert "make setup BACKEND=jax" in backend.missing_backend_message(name, source)
    path = backend.write_backend_file("jax", tmp_path)
    assert backend.configured_backend({}, tmp_path, ["tensorflow"]) == ("jax", str(path))
    with pytest.raises(ValueError, match="tensorflow"):
        backend.write_backend_file("theano", tmp_path)


@pytest.mark.backend
def test_the_backend_command_reports_the_venvs_backend():
    process = emolib("backend", unset=("KERAS_BACKEND",))
    assert process.returncode == 0 and process.stdout.split()[0] == VENV_BACKEND, process.stdout


@pytest.mark.backend
def test_doctor_json_reports_versions_opencv_data_and_model(doctor_json, machine_gpus):
    import cv2
    import keras
    import numpy

    versions = doctor_json["versions"]
    assert versions["keras"] == keras.__version__
    assert versions["numpy"] == numpy.__version__
    assert versions["opencv"] == cv2.__version__
    assert versions[VENV_BACKEND] == doctor_json["backend_version"]
    assert doctor_json["opencv"]["cascade_classifier"] is True
    assert doctor_json["opencv"]["face_detector_yn"] is True
    assert set(doctor_json["shared"]["found"]) >= {"fer2013", "ferplus", "yunet"}
    shipped = os.path.join("emolib", "shipped_models", "emolib-ferplus")
    assert doctor_json["default_model"]["path"].endswith(shipped) and doctor_json["default_model"]["onnx"]
    assert doctor_json["install"] == "full"
    assert (doctor_json["mixed_precision"]["advice"] is None) == (not machine_gpus)  # no GPU, no advice


def test_doctor_follows_emolib_shared(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "face_detection_yunet_2023mar.onnx").write_bytes(b"")
    process = emolib("doctor", "--json", env={"EMOLIB_SHARED": str(tmp_path)})
    assert process.returncode == 0, process.stderr[-2000:]
    shared = json.loads(process.stdout)["shared"]
    assert shared["path"] == str(tmp_path.resolve())
    assert shared["source"] == "EMOLIB_SHARED"
    assert shared["found"] == {"fer2013": False, "ferplus": False, "photos": False, "yunet": True}


def test_doctor_table_is_readable(capsys, monkeypatch):
    # the table printer on a canned report (no backend import in this test process)
    info = {
        "emolib": "0.0", "python": "3.11.7", "executable": "/x/python", "platform": "Linux",
        "versions": {"keras": "3.15.1", "numpy": "2.4.6", "opencv": "4.14.0"},
        "backend": "jax", "backend_version": "0.7.0", "keras_backend_env": "jax",
        "devices": [{"type": "GPU", "name": "NVIDIA H100"}], "gpu": True, "gpu_names": ["NVIDIA H100"],
        "opencv": {"version": "4.14.0", "cascade_classifier": True, "haar_files": True,
                   "face_detector_yn": False},
        "shared": {"path": "/s", "source": "EMOLIB_SHARED", "exists": True,
                   "found": {"fer2013": True, "yunet": False}},
        "default_model": {"path": "/m", "exists": False},
        "mixed_precision": {"policy": "float32", "advice": "use mixed_float16"},
        "install": "light", "errors": ["boom"], "warnings": ["careful"],
    }
    monkeypatch.setattr(doctor, "report", lambda: info)
    assert doctor_command.run(argparse.Namespace(json=False)) == 1  # errors → non-zero exit
    out = capsys.readouterr().out
    assert "jax 0.7.0" in out and "KERAS_BACKEND=jax" in out
    assert re.search(r"emolib\s+0.0 \(light install\)\n", out)
    assert "GPU" in out and "NVIDIA H100" in out
    assert re.search(r"CascadeClassifier\s+yes\n", out) and re.search(r"FaceDetectorYN\s+no\n", out)
    assert re.search(r"yunet\s+not found", out)
    assert "mixed precision: use mixed_float16" in out
    assert "ERROR: boom" in out and "warning: careful" in out


def test_mixed_precision_advice_depends_on_the_gpu():
    assert doctor._mixed_precision_advice([]) is None
    assert "mixed_float16" in doctor._mixed_precision_advice([{"compute_capability": "7.5"}])
    assert "mixed_bfloat16" in doctor._mixed_precision_advice([{"compute_capability": "9.0"}])
    assert "float32" in doctor._mixed_precision_advice([{"compute_capability": "6.1"}])


def test_data_with_an_unknown_dataset_exits_2_naming_the_known_ones(tmp_path):
    # contract: python -m emolib data --dataset nope --data DIR --json → exit 2, the known names on stderr
    process = emolib("data", "--dataset", "nope", "--data", str(tmp_path), "--json")
    assert process.returncode == 2, process.stdout + process.stderr
    assert "nope" in process.stderr
    for known in ("rafdb", "fer2013", "ferplus", "folders"):
        assert known in process.stderr, process.stderr
    assert "Traceback" not in process.stderr


def test_train_flags_are_generated_from_every_train_config_field():
    from dataclasses import fields

    from emolib.commands.parser import config_from_arguments
    from emolib.train import TrainConfig

    base = ["train", "--dataset", "fer2013", "--data", "d"]
    # the defaults live once, in TrainConfig
    assert config_from_arguments(commands.build_parser().parse_args(base)) == TrainConfig()
    train_help = emolib("train", "--help").stdout
    for item in fields(TrainConfig):
        flag = item.metadata.get("flag", "--" + item.name.replace("_", "-"))
        assert f"{flag} " in train_help, f"TrainConfig.{item.name} has no flag"
        assert f"(default: {item.default})" in " ".join(train_help.split()), item.name
    args = commands.build_parser().parse_args([
             *base, "--optimizer", "adamw", "--weight-decay", "0.01", "--warmup-epochs", "3", "--lr", "0.02",
             "--train-base", "2", "--weights", "none", "--class-weights", "balanced", "--keep-snapshots",
             "--input-size", "64"])
    config = config_from_arguments(args)
    assert (config.optimizer, config.weight_decay, config.warmup_epochs, config.learning_rate) == (
        "adamw", 0.01, 3, 0.02)
    assert (config.train_base, config.weights, config.class_weights, config.keep_snapshots) == (
        2, None, "balanced", True)
    assert config.input_size == 64 and config.epochs == TrainConfig().epochs
    assert sorted(args.given_config) == sorted(["optimizer", "weight_decay", "warmup_epochs", "learning_rate",
                                                "train_base", "weights", "class_weights", "keep_snapshots",
                                                "input_size"])
    with pytest.raises(SystemExit):
        commands.build_parser().parse_args([*base, "--optimizer", "rmsprop"])


def test_registries_list_their_names_and_feed_the_cli_choices():
    from emolib import data, detect, models

    assert {"rafdb", "fer2013", "ferplus", "folders"} <= set(data.list_datasets())
    assert {"haar", "yunet"} <= set(detect.list_detectors())
    assert {"simple_cnn", "compact_vgg", "vgg16", "resnet50"} <= set(models.list_backbones())
    predict_help = emolib("predict", "--help").stdout
    assert "{" + ",".join(detect.list_detectors()) + "}" in predict_help


def test_notebook_setup_works_from_the_project_directory_with_tensorflow_quiet(monkeypatch, tmp_path):
    from emolib import notebook, paths

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert notebook.setup() == paths.project_dir() == REPO
    assert Path.cwd() == REPO and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"


def test_predicting_commands_take_a_runtime_and_the_dashboard_passes_it_to_its_api():
    from emolib import runtimes
    from emolib.dashboard import api_command

    assert runtimes.list_runtimes() == ["keras", "onnx"]
    parser = commands.build_parser()
    for command in ("predict", "video", "serve", "dashboard"):
        argv = [command, *MINIMAL_ARGS[command]]
        assert parser.parse_args(argv).runtime == "auto", command
        assert parser.parse_args([*argv, "--runtime", "onnx"]).runtime == "onnx", command
        with pytest.raises(SystemExit):
            parser.parse_args([*argv, "--runtime", "tflite"])
    command = api_command(5001, runtime="onnx")
    assert command[command.index("--runtime") + 1] == "onnx"
    assert parser.parse_args(command[command.index("serve"):]).runtime == "onnx"

"""emolib.devices: device choice, precision choice, and data-parallel training on two simulated CPUs.

The two-device run is a subprocess of this venv's backend (``tests/scripts/two_devices.py``; ``make
test`` runs it on TensorFlow and JAX): JAX must see ``XLA_FLAGS=--xla_force_host_platform_device_count=2``
before it starts, TensorFlow its two logical CPU devices before it makes any.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from emolib import devices as DV
from emolib import models as M
from emolib import train as T

REPO = Path(__file__).resolve().parents[1]
CPU = DV.Device("CPU", "cpu:0")


def gpu(major: int, minor: int = 0, index: int = 0) -> DV.Device:
    return DV.Device("GPU", f"gpu:{index}", (major, minor))


@pytest.mark.parametrize(("devices", "expected"), [
    ([CPU], "float32"),
    ([gpu(9)], "mixed_bfloat16"),  # Hopper
    ([gpu(8, 6)], "mixed_bfloat16"),  # Ampere
    ([gpu(7, 5)], "mixed_float16"),  # Turing
    ([gpu(7, 0)], "mixed_float16"),  # Volta
    ([gpu(6, 1)], "float32"),  # Pascal: no tensor cores
    ([gpu(8, 0), gpu(7, 5, 1)], "mixed_float16"),  # the slowest GPU decides
    ([DV.Device("GPU", "gpu:0")], "float32"),  # capability unknown
])
def test_auto_precision_follows_the_devices(devices, expected):
    assert DV.choose_precision("auto", devices) == expected


def test_explicit_precision_is_kept_and_unknown_ones_are_refused():
    assert DV.choose_precision("mixed_float16", [CPU]) == "mixed_float16"
    with pytest.raises(ValueError, match="precision must be one of auto, float32"):
        DV.choose_precision("half", [CPU])


def test_device_count_choice_and_its_errors():
    available = [gpu(8, 0, i) for i in range(4)]
    assert DV.choose_devices("all", available) == available
    assert DV.choose_devices(2, available) == available[:2]
    assert DV.choose_devices("3", available) == available[:3]
    with pytest.raises(ValueError, match="devices=5, but this machine has 4 GPU device"):
        DV.choose_devices(5, available)
    with pytest.raises(ValueError, match="'all' or a number"):
        DV.choose_devices("many", available)


def test_a_batch_that_does_not_split_over_the_devices_is_refused():
    where = DV.Placement((gpu(8, 0, 0), gpu(8, 0, 1)), "mixed_bfloat16")
    DV.check_batch_size(64, where)
    with pytest.raises(ValueError, match="batch size 63 does not split evenly over 2 devices"):
        DV.check_batch_size(63, where)


@pytest.mark.backend
def test_placement_on_this_machine_is_its_devices_in_their_precision_and_is_recorded(machine_gpus,
                                                                                    machine_precision):
    """On a CPU machine: its CPU device(s) in float32; on a GPU machine: all its GPUs, in their policy."""
    where = DV.placement("all", "auto")
    record = where.record()
    assert record["devices"] == len(DV.local_devices()) >= 1
    if machine_gpus:
        assert record["devices"] == len(machine_gpus)
    assert record["precision"] == machine_precision
    assert record["device_kind"] == ("GPU" if machine_gpus else "CPU")
    assert record["keras_backend"] == keras.backend.backend()


@pytest.mark.backend
@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_precision_model_still_outputs_float32_probabilities(precision):
    where = DV.placement(1, precision)
    with DV.scope(where):
        model = M.build_model("compact_vgg", num_classes=7, input_size=32, seed=0)
    assert keras.config.dtype_policy().name == "float32", "the scope restored the previous policy"
    assert model.get_layer("stage1_a_conv").compute_dtype == precision.split("_")[1]
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    faces = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 1)).astype(np.float32)
    probabilities = keras.ops.convert_to_numpy(model(faces))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.backend
def test_two_devices_train_like_one(tmp_path):
    """On 2 simulated CPU devices of this venv's backend: the same run directory as on 1, the same
    first-step loss on the same batch, a resumable checkpoint, and a saved model that is an ordinary
    float32 one-device model. On PyTorch: the clear error instead."""
    backend = keras.backend.backend()
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, str(REPO / "tests" / "scripts" / "two_devices.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    if backend == "torch":
        assert done.returncode != 0 and "needs the JAX or TensorFlow backend" in done.stderr
        return
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    report = json.loads(line.removeprefix("REPORT "))
    one, two = report["1"], report["2"]
    assert report["available"] == 2
    assert two["files"] == one["files"] and "checkpoint/last.keras" in two["files"]
    assert two["first_step_loss"] == pytest.approx(one["first_step_loss"], rel=1e-5)
    for record in (two["params_placement"], two["card_placement"]):
        assert record["devices"] == 2 and record["keras_backend"] == backend
    assert one["params_placement"]["devices"] == one["card_placement"]["devices"] == 1
    assert report["resumed_epochs"] == [0, 1]
    assert report["saved_model_output"] == [[3, 7], "float32"]


def test_several_devices_on_pytorch_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    two_gpus = [gpu(8, 0, 0), gpu(8, 0, 1)]
    with pytest.raises(ValueError, match="needs the JAX or TensorFlow backend"):
        DV.placement(2, "auto", available=two_gpus)
    assert len(DV.placement(1, "auto", available=two_gpus).devices) == 1


def test_train_refuses_more_devices_than_the_machine_has_before_making_a_run_directory(tmp_path):
    from emolib import data as D
    from emolib import labels as L

    split = D.Split(np.zeros((14, 48, 48, 1), dtype=np.uint8), np.arange(14) % 7, L.EMOTIONS_7,
                    [str(i) for i in range(14)])
    too_many = len(DV.local_devices()) + 1
    config = T.TrainConfig(backbone="simple_cnn", epochs=1, batch_size=14, devices=too_many)
    with pytest.raises(ValueError, match=f"devices={too_many}, but this machine has"):
        T.train(config, split, split, output=tmp_path)
    assert not list(tmp_path.iterdir())

"""Train one tiny run on 1 device and one on 2 simulated CPU devices; print what test_devices compares.

Run with ``KERAS_BACKEND`` set (``jax`` also needs ``XLA_FLAGS=--xla_force_host_platform_device_count=2``
before JAX starts; TensorFlow's two logical CPU devices are made here; PyTorch stops with the clear
error of ``devices=2``). Argument: the output folder.
"""

import json
import os
import sys
from pathlib import Path

if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf

    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from emolib import data as D  # noqa: E402
from emolib import devices as DV  # noqa: E402
from emolib import labels as L  # noqa: E402
from emolib import models as M  # noqa: E402
from emolib import train as T  # noqa: E402


@M.register_backbone("dense_probe", input_size=16, channels=1, preprocessing="unit")
def dense_probe(x, num_classes, weights=None, train_base=True):
    """No dropout and no batch norm: a forward pass that does not depend on how a batch is split."""
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)


class FirstStepLoss(keras.callbacks.Callback):
    """The loss of the first batch of the run (computed before the first update)."""

    def on_train_batch_end(self, batch, logs=None):
        if not hasattr(self, "loss"):
            self.loss = float(keras.ops.convert_to_numpy(logs["loss"]))


def split(count: int, seed: int) -> D.Split:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 16, 16, 1), dtype=np.uint8)
    labels = np.arange(count) % len(L.EMOTIONS_7)
    return D.Split(images, labels, L.EMOTIONS_7, [f"face-{i}" for i in range(count)])


output = Path(sys.argv[1])
train_split, val_split = split(70, 0), split(21, 1)  # 21: a last validation batch to pad for 2 devices
report = {"available": len(DV.local_devices())}
for devices in (1, 2):
    config = T.TrainConfig(backbone="dense_probe", epochs=1, batch_size=16, seed=0, devices=devices)
    probe = FirstStepLoss()
    run = T.train(config, train_split, val_split, output=output, name=f"devices{devices}",
                  callbacks=[probe], verbose=0)
    report[devices] = {
        "first_step_loss": probe.loss,
        "files": sorted(str(p.relative_to(run.run_dir)) for p in run.run_dir.rglob("*") if p.is_file()),
        "params_placement": json.loads((run.run_dir / "params.json").read_text())["placement"],
        "card_placement": json.loads((run.run_dir / "model.json").read_text())["placement"],
    }
    if devices == 2:  # a resumed run on 2 devices: train on to a larger budget from the checkpoint
        resumed = T.train(T.TrainConfig(**{**config.__dict__, "epochs": 2}), train_split, val_split,
                          run_dir=run.run_dir, verbose=0)
        report["resumed_epochs"] = [row["epoch"] for row in resumed.history]
        loaded = M.load_model(run.run_dir)  # the saved model: an ordinary one-device model
        probabilities = loaded.model.predict_on_batch(np.asarray(val_split.images[:3], dtype=np.float32))
        report["saved_model_output"] = [list(probabilities.shape), str(probabilities.dtype)]
print("REPORT " + json.dumps(report))

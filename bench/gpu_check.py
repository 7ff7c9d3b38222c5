"""A prepared GPU check: training speed and memory of two backbones on FER2013, in a few minutes.

    .venv-jax/bin/python bench/gpu_check.py [--steps 50] [--batch-size 128] [--precision auto]

Meant for a borrowed NVIDIA machine with JAX or PyTorch and no TensorFlow, nor internet (emolib's own
code, keras and the backend's wheels; FER2013 under ``$EMOLIB_SHARED``), it runs on any backend and on a
CPU too (``--steps 2 --batch-size 8`` is its test). For each of ``compact_vgg`` at 48×48 and ``vgg16``
at 100×100 (``weights=None``: no download), both on gray faces, it builds the model under the precision
policy (``auto``: :func:`emolib.devices.choose_precision`), trains ``--warmup`` steps (compilation),
then ``--steps`` timed steps of ``--batch-size`` real FER2013 train faces (a seeded sample, repeated
if needed), and prints faces/s, ms per step, peak accelerator memory (peak since start: ``vgg16`` runs
second and is the larger), policy and device.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import emolib  # noqa: E402, F401  (before Keras: it sets this venv's Keras backend)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from emolib import data as D  # noqa: E402
from emolib import devices as DV  # noqa: E402
from emolib import doctor  # noqa: E402
from emolib import models as M  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOLIB_SHARED", REPO.parent / "shared")).resolve()
#: backbone → input side of the check
MODELS = {"compact_vgg": 48, "vgg16": 100}


def fer2013_faces(root: Path, count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` gray FER2013 train faces at ``size``×``size`` (a seeded sample, repeated if needed)."""
    listing = D.get_dataset("fer2013").scan(root, "train")
    rows = np.random.default_rng(seed).choice(len(listing.sources), min(count, len(listing.sources)),
                                              replace=False)
    def face(row):
        try:
            return D.decode_face(listing.sources[row], size, 1)
        except (ValueError, OSError):  # an unreadable file: left out
            return None

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        faces = list(pool.map(face, rows))
    keep = [i for i, face in enumerate(faces) if face is not None]
    images, labels = np.stack([faces[i] for i in keep]), listing.labels[rows[keep]]
    return np.resize(images, (count, size, size, 1)), np.resize(labels, count)


def peak_memory_mb() -> float | None:
    """Peak memory in use on the first accelerator since start (None on a CPU)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
    elif backend == "torch":
        import torch

        peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    elif backend == "tensorflow":
        import tensorflow as tf

        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] if tf.config.list_logical_devices(
            "GPU") else None
    else:
        peak = None
    return None if peak is None else peak / 2**20


class StepTimer(keras.callbacks.Callback):
    """The time of each train step's end, once its loss has reached the host."""

    def __init__(self):
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        float(logs["loss"])  # waits for the step (JAX and PyTorch dispatch asynchronously)
        self.ends.append(time.perf_counter())


def check(backbone: str, size: int, faces: np.ndarray, labels: np.ndarray, batch_size: int, warmup: int,
          precision: str) -> dict:
    """Train ``backbone`` for ``warmup`` + timed steps on ``faces``; its throughput and memory."""
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    model = M.build_model(backbone, num_classes=7, input_size=size, channels=1, weights=None, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    timer = StepTimer()
    started = time.perf_counter()
    model.fit(faces, labels, batch_size=batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    timed = timer.ends[warmup - 1:]  # from the end of the last warm-up step
    seconds = timed[-1] - timed[0]
    steps = len(timed) - 1
    return {"backbone": backbone, "input": f"{size}x{size}x1", "batch_size": batch_size, "steps": steps,
            "faces_per_s": round(steps * batch_size / seconds, 1),
            "ms_per_step": round(1000 * seconds / steps, 1),
            "warmup_s": round(timed[0] - started, 1), "peak_accelerator_mb": peak_memory_mb(),
            "precision": keras.config.dtype_policy().name, "parameters": int(model.count_params())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "fer2013")
    parser.add_argument("--steps", type=int, default=50, help="timed train steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps (compilation)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", default="auto", choices=DV.PRECISIONS,
                        help="dtype policy; auto: emolib's rule (float32 on CPU, mixed_bfloat16 on compute "
                             "capability ≥ 8, mixed_float16 on 7.x)")
    parser.add_argument("--backbones", default=",".join(MODELS), help="which of the check's backbones")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    if set(args.backbones.split(",")) - set(MODELS):
        parser.error(f"--backbones: choose among {', '.join(MODELS)}")

    started = time.perf_counter()
    info = doctor.keras_backend_info()
    if info.get("error"):
        print(f"gpu_check: {info['error']}", file=sys.stderr)
        return 1
    accelerators = [d for d in info["devices"] if d["type"] != "CPU"]
    device = ", ".join(d["name"] for d in accelerators) or "CPU only"
    precision = DV.choose_precision(args.precision, DV.local_devices())
    count = (args.warmup + args.steps) * args.batch_size
    rows = []
    for backbone in args.backbones.split(","):
        size = MODELS[backbone]
        faces, labels = fer2013_faces(args.data, count, size)
        rows.append(check(backbone, size, faces, labels, args.batch_size, args.warmup, precision))
    result = {"backend": f"{info['backend']} {info['backend_version']}", "keras": info["keras"],
              "device": device, "rows": rows, "wall_s": round(time.perf_counter() - started, 1)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"backend {result['backend']} (Keras {result['keras']}), device: {device}")
    print("| backbone | input | batch | steps | faces/s | ms/step | warm-up s | peak accel. MB | precision |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        peak = "n/a (CPU)" if row["peak_accelerator_mb"] is None else f"{row['peak_accelerator_mb']:.0f}"
        print(f"| {row['backbone']} | {row['input']} | {row['batch_size']} | {row['steps']} | "
              f"{row['faces_per_s']:.0f} | {row['ms_per_step']} | {row['warmup_s']} | {peak} | "
              f"{row['precision']} |")
    print(f"wall time {result['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

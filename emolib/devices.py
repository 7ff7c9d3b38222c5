"""Where training runs: the local devices, data parallelism over several of them, numeric precision.

Data parallelism uses each backend's own means: ``keras.distribution.DataParallel`` on JAX,
``tf.distribute.MirroredStrategy`` on TensorFlow (Keras 3.15 has none for PyTorch). The batch size is
the *global* batch, split evenly over the devices, and the learning rate applies to it: ``devices=2``
with the same batch size and rate optimises as one device does, only each device computes half.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class Device:
    """One local device: ``kind`` ("GPU" or "CPU"), its name, and a GPU's compute capability."""

    kind: str
    name: str
    compute_capability: tuple[int, int] | None = None


@dataclass(frozen=True)
class Placement:
    """The devices a run trains on, its dtype policy (both recorded in params.json and the model card)
    and, on several devices, the backend's distribution object (one per run: TensorFlow refuses two)."""

    devices: tuple[Device, ...]
    precision: str
    distribution: object = field(default=None, compare=False, repr=False)

    def record(self) -> dict:
        import keras

        return {"devices": len(self.devices), "device_kind": self.devices[0].kind,
                "device_names": [d.name for d in self.devices], "precision": self.precision,
                "keras_backend": keras.backend.backend()}


def local_devices() -> list[Device]:
    """The backend's local accelerators: its GPUs, or its CPU devices where it sees no GPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = [tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus]
            lowest = None if None in details else tuple(min(details))  # logical GPUs may share one
            return [Device("GPU", d.name, lowest) for d in tf.config.list_logical_devices("GPU")]
        return [Device("CPU", d.name) for d in tf.config.list_logical_devices("CPU")]
    if backend == "jax":
        import jax

        return [Device("GPU", str(d), _capability(getattr(d, "compute_capability", None)))
                if d.platform == "gpu" else Device(d.platform.upper(), str(d)) for d in jax.local_devices()]
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return [Device("GPU", f"cuda:{i}", torch.cuda.get_device_capability(i))
                    for i in range(torch.cuda.device_count())]
        return [Device("CPU", "cpu")]
    return [Device("CPU", "cpu")]


def _capability(text) -> tuple[int, int] | None:
    if text is None:
        return None
    major, _, minor = str(text).partition(".")
    return int(major), int(minor or 0)


def choose_devices(devices: str | int, available: list[Device]) -> list[Device]:
    """The first ``devices`` of ``available`` (``"all"``: every one); a clear error for too many."""
    import keras

    if str(devices).lower() == "all":
        return list(available)
    try:
        count = int(devices)
    except ValueError:
        raise ValueError(f"devices must be 'all' or a number, not {devices!r}") from None
    if not 1 <= count <= len(available):
        kinds = ", ".join(sorted({d.kind for d in available}))
        raise ValueError(f"devices={count}, but this machine has {len(available)} {kinds} device(s) "
                         f"for the {keras.backend.backend()} backend: use 1..{len(available)} or 'all'")
    return list(available[:count])


def choose_precision(precision: str, devices: list[Device]) -> str:
    """The Keras dtype policy: ``precision`` itself, or for ``"auto"`` float32 on CPU, mixed_bfloat16
    on GPUs of compute capability 8 and above, mixed_float16 on 7.x (the slowest GPU decides)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    capabilities = [d.compute_capability for d in devices if d.kind == "GPU"]
    if not capabilities or len(capabilities) < len(devices) or None in capabilities:
        return "float32"
    lowest = min(capabilities)
    if lowest >= (8, 0):
        return "mixed_bfloat16"
    return "mixed_float16" if lowest >= (7, 0) else "float32"


def placement(devices: str | int = 1, precision: str = "auto",
              available: list[Device] | None = None) -> Placement:
    """The :class:`Placement` of a run asking for ``devices`` and ``precision`` (``available``: the
    local devices, found when not given)."""
    import keras

    available = local_devices() if available is None else available
    asked = str(devices).lower()
    several = len(available) > 1 if asked == "all" else asked.isdigit() and int(asked) > 1
    if several and keras.backend.backend() not in ("jax", "tensorflow"):
        raise ValueError(f"training on several devices needs the JAX or TensorFlow backend (Keras "
                         f"{keras.__version__} has no data parallelism for {keras.backend.backend()}): "
                         "set KERAS_BACKEND=jax or tensorflow, or train with devices=1")
    chosen = choose_devices(devices, available)
    return Placement(tuple(chosen), choose_precision(precision, chosen), _distribution(chosen))


def check_batch_size(batch_size: int, where: Placement) -> None:
    """Refuse a global batch that does not split evenly over the devices."""
    count = len(where.devices)
    if batch_size % count:
        raise ValueError(f"batch size {batch_size} does not split evenly over {count} devices: use a "
                         f"multiple of {count} (the batch size is the global batch)")


@contextlib.contextmanager
def scope(where: Placement):
    """Build, compile and fit a model inside this: its dtype policy and, on several devices, the
    backend's data parallelism. The previous dtype policy is restored on exit."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(where.precision)
    try:
        with contextlib.nullcontext() if where.distribution is None else where.distribution.scope():
            yield
    finally:
        keras.config.set_dtype_policy(previous)


def _distribution(devices: list[Device]):
    """``keras.distribution.DataParallel`` (JAX) or ``tf.distribute.MirroredStrategy`` over ``devices``;
    None for one device."""
    import keras

    if len(devices) == 1:
        return None
    if keras.backend.backend() == "jax":
        import jax

        by_name = {str(d): d for d in jax.local_devices()}
        return keras.distribution.DataParallel(devices=[by_name[d.name] for d in devices])
    import tensorflow as tf

    return tf.distribute.MirroredStrategy([d.name for d in devices])


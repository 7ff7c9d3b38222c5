"""``emolib doctor``: what this environment can run — backend, devices, versions, data and model found.

:func:`report` gathers the facts as a plain dict (JSON-serialisable); :func:`format_report` writes it as a
table (``emolib doctor``; ``--json`` prints the dict). Every probe is guarded: a broken import is
reported, not raised, since the point of the command is to diagnose a broken environment. The Keras
backend library (TensorFlow, JAX or PyTorch) is imported only here, inside :func:`report`, never at CLI
start-up.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from emolib import __version__, backend, install, paths

#: What emolib looks for under the shared folder (see tests/conftest.py)
SHARED_ITEMS = {
    "fer2013": ("data", "fer2013"),
    "ferplus": ("data", "ferplus"),
    "photos": ("data", "photos"),
    "yunet": ("models", "face_detection_yunet_2023mar.onnx"),
}


def shared_dir() -> tuple[Path, str]:
    """The shared data folder and where its location came from (``EMOLIB_SHARED`` or the default)."""
    source = paths.SHARED_ENV if os.environ.get(paths.SHARED_ENV) else "default (../shared beside the repo)"
    return paths.shared_dir(), source


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _opencv() -> dict[str, Any]:
    info: dict[str, Any] = {"version": None, "cascade_classifier": False, "haar_files": False,
                            "face_detector_yn": False}
    try:
        import cv2
    except Exception as exc:  # any import failure is what we report
        info["error"] = _error(exc)
        return info
    info["version"] = cv2.__version__
    info["cascade_classifier"] = hasattr(cv2, "CascadeClassifier")
    haar_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
    info["haar_files"] = bool(haar_dir) and Path(haar_dir, "haarcascade_frontalface_default.xml").is_file()
    info["face_detector_yn"] = hasattr(cv2, "FaceDetectorYN")
    return info


def _tensorflow_devices(tf) -> list[dict[str, Any]]:
    devices = []
    for device in tf.config.list_physical_devices():
        entry: dict[str, Any] = {"type": device.device_type, "name": device.name}
        if device.device_type == "GPU":
            try:
                details = tf.config.experimental.get_device_details(device)
            except Exception:  # details are a bonus
                details = {}
            if details.get("device_name"):
                entry["name"] = details["device_name"]
            if details.get("compute_capability"):
                entry["compute_capability"] = ".".join(map(str, details["compute_capability"]))
        devices.append(entry)
    return devices


def _jax_devices(jax) -> list[dict[str, Any]]:
    devices = []
    for device in jax.devices():
        kind = "GPU" if device.platform in ("gpu", "cuda", "rocm") else device.platform.upper()
        devices.append({"type": kind, "name": getattr(device, "device_kind", str(device))})
    return devices


def _torch_devices(torch) -> list[dict[str, Any]]:
    devices = [{"type": "CPU", "name": "cpu"}]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(index)
            devices.append({"type": "GPU", "name": torch.cuda.get_device_name(index),
                            "compute_capability": f"{major}.{minor}"})
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    if mps is not None and mps.is_available():
        devices.append({"type": "MPS", "name": "Apple Metal"})
    return devices


def keras_backend_info() -> dict[str, Any]:
    """Keras version, active backend, its library version, devices and precision policy."""
    info: dict[str, Any] = {"keras": None, "backend": None, "backend_version": None, "devices": [],
                            "precision_policy": None}
    name, source = backend.applied
    if "keras" not in sys.modules and (
            name is None or importlib.util.find_spec(backend.BACKEND_LIBRARIES.get(name, name)) is None):
        info["error"] = backend.missing_backend_message(name, source)
        return info
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # hide TensorFlow's INFO lines, keep warnings
    try:
        import keras
    except Exception as exc:
        info["error"] = f"import keras failed: {_error(exc)}"
        return info
    info["keras"] = keras.__version__
    info["backend"] = name = keras.backend.backend()
    try:
        info["precision_policy"] = keras.mixed_precision.global_policy().name
    except Exception:
        pass
    try:
        library = importlib.import_module(backend.BACKEND_LIBRARIES.get(name, name))
    except Exception as exc:
        info["error"] = f"import {name} failed: {_error(exc)}"
        return info
    info["backend_version"] = getattr(library, "__version__", None)
    try:
        if name == "tensorflow":
            info["devices"] = _tensorflow_devices(library)
            info["built_with_cuda"] = bool(library.test.is_built_with_cuda())
        elif name == "jax":
            info["devices"] = _jax_devices(library)
        elif name == "torch":
            info["devices"] = _torch_devices(library)
        else:
            info["devices"] = [{"type": "CPU", "name": "cpu"}]
    except Exception as exc:
        info["error"] = f"listing {name} devices failed: {_error(exc)}"
    return info


def _shared() -> dict[str, Any]:
    path, source = shared_dir()
    found = {key: path.joinpath(*parts).exists() for key, parts in SHARED_ITEMS.items()}
    return {"path": str(path), "source": source, "exists": path.is_dir(), "found": found}


def _default_model() -> dict[str, Any]:
    from emolib.modelcards import CARD_FILE, DEFAULT_MODEL_DIR, MODEL_FILE, ONNX_FILE  # Keras-free

    return {"path": str(DEFAULT_MODEL_DIR),
            "exists": (DEFAULT_MODEL_DIR / MODEL_FILE).is_file(),
            "card": (DEFAULT_MODEL_DIR / CARD_FILE).is_file(),
            "onnx": (DEFAULT_MODEL_DIR / ONNX_FILE).is_file()}


def _mixed_precision_advice(gpus: list[dict[str, Any]]) -> str | None:
    if not gpus:
        return None
    capabilities = [float(g["compute_capability"]) for g in gpus if g.get("compute_capability")]
    if capabilities and min(capabilities) < 7.0:
        return ("GPU compute capability < 7.0 (no tensor cores): mixed precision brings little; "
                "keep float32")
    policy = "mixed_bfloat16" if capabilities and min(capabilities) >= 8.0 else "mixed_float16"
    return (f'keras.mixed_precision.set_global_policy("{policy}") before building the model '
            "speeds up training on tensor-core GPUs (the softmax head stays float32)")


def report() -> dict[str, Any]:
    """Facts about this environment, as a JSON-serialisable dict.

    Returns
    -------
    dict
        ``emolib``, ``python``, ``platform``, ``versions`` (numpy, keras, opencv, backend library),
        ``backend``, ``backend_version``, ``devices`` (list of ``{type, name}``), ``gpu`` (bool),
        ``gpu_names``, ``opencv`` (CascadeClassifier / Haar files / FaceDetectorYN present),
        ``shared`` (path and which datasets/models were found), ``default_model``,
        ``mixed_precision`` (current policy and advice), ``backend_source`` (see :mod:`emolib.backend`),
        ``installed_backends``, ``install`` (``full``, or ``light``: see :mod:`emolib.install`),
        ``errors`` (things that stop emolib from working) and ``warnings`` (things that limit it).
    """
    errors: list[str] = []
    warnings: list[str] = []

    keras_backend = keras_backend_info()
    opencv = _opencv()
    shared = _shared()
    model = _default_model()
    gpus = [d for d in keras_backend["devices"] if d["type"] == "GPU"]
    installed = backend.installed_backends()
    missing_full = install.missing_full_requirements()

    if missing_full:  # a light install: no Keras is expected, so its absence only limits emolib
        warnings.append(f"light install: predict and serve run on ONNX Runtime; the rest needs the full "
                        f"install: {install.FULL_INSTALL} (missing: {install.describe(missing_full)})")
    if keras_backend.get("error"):
        (warnings if missing_full else errors).append(keras_backend["error"])
    if opencv.get("error"):
        errors.append(f"import cv2 failed: {opencv['error']}")
    elif not (opencv["cascade_classifier"] and opencv["haar_files"]):
        errors.append(f"OpenCV {opencv['version']} lacks CascadeClassifier or its Haar files: "
                      "install opencv-python-headless<5")
    if opencv["version"] and not opencv["face_detector_yn"]:
        warnings.append("OpenCV has no FaceDetectorYN: the yunet detector is unavailable (haar still works)")
    if not shared["exists"]:
        warnings.append(f"shared data folder not found: {shared['path']} (set EMOLIB_SHARED)")
    else:
        missing = [key for key, ok in shared["found"].items() if not ok]
        if missing:
            warnings.append(f"not found under {shared['path']}: {', '.join(missing)}")
    if not model["exists"]:
        warnings.append(f"default model not found: {model['path']} (train one, or pass --model)")
    if len(installed) > 1:
        warnings.append(f"several backend libraries installed ({', '.join(installed)}): one per "
                        "environment is safer (they have crashed together)")
    if not gpus and shutil.which("nvidia-smi"):
        hint = ""
        if _dist_version("tensorflow-cpu"):
            hint = " (tensorflow-cpu is installed: `make setup TF=gpu`, or use .devcontainer/gpu)"
        warnings.append(f"nvidia-smi is present but {keras_backend['backend']} sees no GPU{hint}")

    versions = {"python": platform.python_version(), "numpy": _dist_version("numpy"),
                "keras": keras_backend["keras"], "opencv": opencv["version"]}
    if keras_backend["backend"]:
        versions[keras_backend["backend"]] = keras_backend["backend_version"]

    return {
        "emolib": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "versions": versions,
        "backend": keras_backend["backend"],
        "backend_version": keras_backend["backend_version"],
        "keras_backend_env": os.environ.get("KERAS_BACKEND"),
        "backend_source": backend.applied[1],
        "devices": keras_backend["devices"],
        "gpu": bool(gpus),
        "gpu_names": [g["name"] for g in gpus],
        "built_with_cuda": keras_backend.get("built_with_cuda"),
        "opencv": opencv,
        "shared": shared,
        "default_model": model,
        "mixed_precision": {"policy": keras_backend["precision_policy"],
                            "advice": _mixed_precision_advice(gpus)},
        "installed_backends": installed,
        "install": "light" if missing_full else "full",
        "errors": errors,
        "warnings": warnings,
    }


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def format_report(info: dict[str, Any]) -> str:
    """The report as an aligned, human-readable table."""
    devices = ", ".join(f"{d['type']}: {d['name']}" for d in info["devices"]) or "none listed"
    opencv = info["opencv"]
    shared = info["shared"]
    model = info["default_model"]
    rows: list[tuple[str, str]] = [
        ("emolib", f"{info['emolib']} ({info['install']} install)"),
        ("python", f"{info['python']} ({info['executable']})"),
        ("platform", info["platform"]),
        ("keras", str(info["versions"]["keras"])),
        ("backend", f"{info['backend']} {info['backend_version'] or ''}".strip()
         + (f"  (KERAS_BACKEND={info['keras_backend_env']})" if info["keras_backend_env"] else "")),
        ("  chosen by", str(info.get("backend_source"))),
        ("numpy", str(info["versions"]["numpy"])),
        ("opencv", str(opencv["version"])),
        ("  CascadeClassifier", _yes(opencv["cascade_classifier"] and opencv["haar_files"])),
        ("  FaceDetectorYN", _yes(opencv["face_detector_yn"])),
        ("GPU", _yes(info["gpu"]) + (f" ({', '.join(info['gpu_names'])})" if info["gpu"] else "")),
        ("devices", devices),
        ("precision policy", str(info["mixed_precision"]["policy"])),
        ("shared data", f"{shared['path']}  [{shared['source']}]"
         + ("" if shared["exists"] else "  (missing)")),
    ]
    rows += [(f"  {key}", "found" if ok else "not found") for key, ok in shared["found"].items()]
    rows.append(("default model", f"{model['path']}  ({'found' if model['exists'] else 'not found'})"))
    width = max(len(key) for key, _ in rows)
    lines = [f"{key:<{width}}  {value}" for key, value in rows]
    if info["mixed_precision"]["advice"]:
        lines.append(f"\nmixed precision: {info['mixed_precision']['advice']}")
    lines += [f"ERROR: {message}" for message in info["errors"]]
    lines += [f"warning: {message}" for message in info["warnings"]]
    return "\n".join(lines)

"""Plain helpers shared by the tests (and bench/): the CI rule, servers on free ports, Chromium, the
dashboard's pages, and the GPUs this machine really has. The pytest fixtures built on them are in
conftest.py."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("EMOLIB_CHROMIUM", "/usr/bin/chromium")
#: Headless Chromium on a server: no sandbox (root in containers), no GPU, no calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("EMOLIB_SCREENSHOTS") or Path(tempfile.gettempdir()) / "emolib-screenshots")
LOAD_MS = 120_000  # Voilà starts a kernel per page; TensorFlow takes a while on 2 cores
PREDICT_MS = 180_000
#: How to get Chromium and ffmpeg where they are missing.
BROWSER_FIX = "run `make browser`: Debian's chromium and ffmpeg"


def missing(what: str, fix: str) -> NoReturn:
    """Skip the test because ``what`` is absent here; in CI (``$CI`` set), where it must be there, fail it.

    Parameters
    ----------
    what : str
        What is missing, e.g. ``"Chromium at /usr/bin/chromium"``.
    fix : str
        How to get it, e.g. ``"run `make browser`"``.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI ({fix})")
    pytest.skip(f"{what} not found ({fix})")


def chromium_executable() -> str:
    """The Chromium the browser tests drive (``$EMOLIB_CHROMIUM``, default Debian's), or :func:`missing`."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing(f"Chromium at {CHROMIUM}", BROWSER_FIX)
    return CHROMIUM


def ffmpeg_executable() -> str:
    """The ffmpeg on PATH, or :func:`missing`."""
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        missing("ffmpeg", BROWSER_FIX)
    return ffmpeg


def fake_camera_args(video: Path) -> list[str]:
    """:data:`CHROMIUM_ARGS` and a fake camera that plays ``video`` (.y4m), with no permission prompt."""
    return [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"]


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``command`` in a subprocess, serving on ``port`` of this machine, its output in ``log_path``.

    Returns once the port takes connections; raises ``RuntimeError`` with the log's tail when the
    process exits first or ``start_s`` seconds pass. A context manager: :meth:`stop` on the way out.

    Parameters
    ----------
    command : list of str
        The server's command line (it must listen on ``port``).
    port : int
        The port, usually from :func:`free_port`.
    log_path : Path
        Where the server's stdout and stderr go.
    env : dict, optional
        Its whole environment (default: this one, with ``PYTHONUNBUFFERED=1``).
    cwd : Path
        Its working directory (default: the repository).
    start_s, stop_s : float
        How long it may take to listen, and to exit once asked to.
    own_session : bool
        Start it in a session of its own and stop the whole process group (for ``make``, whose
        children would otherwise outlive it).
    """

    def __init__(self, command: list[str], port: int, log_path: Path, *, env: dict | None = None,
                 cwd: Path = REPO, start_s: float = 180, stop_s: float = 30, own_session: bool = False):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.stop_s = stop_s
        self.own_session = own_session
        env = {**os.environ, "PYTHONUNBUFFERED": "1"} if env is None else env
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([str(part) for part in command], cwd=cwd, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=own_session)
        deadline = time.monotonic() + start_s
        while True:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{command[0]} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nothing listened on port {port} within {start_s} s:\n"
                                       f"{self.log_tail()}") from None
                time.sleep(0.5)

    def log_tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters the server wrote."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def _signal(self, number: int) -> None:
        if self.own_session:
            os.killpg(self.process.pid, number)
        else:
            self.process.send_signal(number)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL when it has not exited within ``stop_s`` seconds."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=self.stop_s)
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def serve_api(log_path: Path, model: Path | str) -> Server:
    """``python -m emolib serve`` with ``model`` and the YuNet detector, on a free loopback port."""
    port = free_port()
    command = [sys.executable, "-m", "emolib", "serve", "--port", str(port), "--model", str(model),
               "--detector", "yunet"]
    return Server(command, port, log_path)


#: Test-short kernel culling in :func:`dashboard_server`: a kernel whose page left goes after this many s …
CULL_DISCONNECTED_S = 5
#: … checked this often.
CULL_INTERVAL_S = 1


def dashboard_server(log_path: Path, model: Path | str) -> Server:
    """``python -m emolib dashboard`` (the shared API, then Voilà) with ``model``, on a free port, on
    every interface, with one preheated kernel and test-short culling."""
    port = free_port()
    command = [sys.executable, "-m", "emolib", "dashboard", "--host=0.0.0.0", f"--port={port}",
               "--pool-size=1", "--pool-refill-delay=1",
               f"--cull-disconnected={CULL_DISCONNECTED_S}", f"--cull-interval={CULL_INTERVAL_S}"]
    env = {**os.environ, "EMOLIB_MODEL": str(model), "PYTHONUNBUFFERED": "1"}
    return Server(command, port, log_path, env=env, start_s=300)


def open_dashboard(browser, server):
    """A fresh page (so a fresh Voilà kernel) of ``browser`` showing the dashboard's mode chooser.

    Returns (context, page); the page's JavaScript errors collect in ``page.js_errors``."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.grant_permissions(["camera"])
    page = context.new_page()
    page.set_default_timeout(LOAD_MS)
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    page.goto(server.url, timeout=LOAD_MS)
    try:
        page.wait_for_selector(".emolib-chooser", state="visible", timeout=LOAD_MS)
    except Exception as error:
        context.close()
        raise AssertionError(f"the dashboard did not appear: {error}\n{server.log_tail()}") from None
    return context, page


def screenshot(page, name: str) -> Path:
    """Save a screenshot of the whole dashboard (Voilà scrolls inside the page, so grow the viewport)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        "() => { for (const e of document.querySelectorAll('*')) if (e.scrollTop) e.scrollTop = 0;"
        " window.scrollTo(0, 0);"
        " const d = document.querySelector('.emolib-dashboard');"
        " return Math.ceil(d.getBoundingClientRect().bottom + 40); }")
    page.set_viewport_size({"width": 1100, "height": max(900, min(int(height), 4000))})
    page.wait_for_timeout(300)  # one layout pass at the new size
    path = SCREENSHOTS / name
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1100, "height": 900})
    assert path.stat().st_size > 10_000
    return path


def backend_gpus() -> list[tuple[int, int] | None]:
    """The compute capability of each GPU this venv's Keras backend sees (None where it does not say),
    asked of the backend library itself, not of emolib."""
    import keras

    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return [tf.config.experimental.get_device_details(gpu).get("compute_capability")
                for gpu in tf.config.list_physical_devices("GPU")]
    if name == "jax":
        import jax

        return [tuple(int(part) for part in device.compute_capability.split("."))
                if getattr(device, "compute_capability", None) else None
                for device in jax.devices() if device.platform in ("gpu", "cuda")]
    if name == "torch":
        import torch

        return [torch.cuda.get_device_capability(index) for index in range(torch.cuda.device_count())]
    return []


def nvidia_smi_gpus() -> list[str]:
    """The names of the GPUs the NVIDIA driver lists (``nvidia-smi``); none where it is not installed
    or cannot reach a GPU."""
    if not shutil.which("nvidia-smi"):
        return []
    listed = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                            text=True, timeout=60)
    if listed.returncode != 0:  # installed, but no driver or no device answers
        return []
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]

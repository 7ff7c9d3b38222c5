"""``make dashboard`` (``python -m emolib dashboard``): the dashboard for a room full of viewers.

Two processes, started together and stopped together:

1. **One prediction API** (``python -m emolib serve`` on loopback, port ``--api-port``): the only process
   that loads Keras, its backend and the model.
2. **Voilà** serving ``dashboards/emotions.ipynb`` with ``$EMOLIB_API_URL`` pointing at that API, so every
   viewer's kernel draws widgets and sends photos but never imports Keras
   (:class:`emolib.widgets.remote.RemotePredictor`). Voilà keeps ``--pool-size`` kernels *preheated*
   (the notebook already run, the sample already analysed), so a new page shows at once;
   ``--pool-size`` is sized for a room's burst (10 pages at once), ``--pool-refill-delay`` lets the
   burst be served before the used kernels are replaced.

Kernels go away through Jupyter Server's own culler, run by :class:`RoomKernelManager`: Voilà shuts a
page's kernel down when the page is closed (its ``beforeunload`` beacon); a kernel whose page went away
without saying so is culled ``--cull-disconnected`` seconds after the page's connection closed, and the
kernel of a tab left open but unused after ``--cull-idle`` seconds. The culler looks every
``--cull-interval`` seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from jupyter_core.utils import ensure_async
from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Integer

from emolib import paths
from emolib.paths import MODEL_ENV
from emolib.widgets.app import resolve_start_model
from emolib.widgets.remote import API_URL_ENV

NOTEBOOK = paths.project_dir() / "dashboards" / "emotions.ipynb"
#: Seconds the API may take to load its model before the launcher gives up.
API_START_TIMEOUT = 300
#: Seconds Voilà waits for a notebook cell's output (the dashboard widget) after the cell ran.
IOPUB_TIMEOUT = 60


class RoomKernelManager(AsyncMappingKernelManager):
    """Jupyter Server's kernel manager with a second, shorter cull timeout for kernels whose page left.

    ``cull_idle_timeout`` (with ``cull_connected``) culls the kernels of open but unused tabs;
    ``cull_disconnected_timeout`` culls, sooner, idle kernels whose last page disconnected that long
    ago. Kernels no page ever connected to (Voilà's preheated pool, a page still loading) are left to
    the first rule (Voilà never culls its pool).
    """

    cull_disconnected_timeout = Integer(
        60, config=True,
        help="Seconds after its last page disconnected (and of inactivity) after which a kernel is "
             "culled (0: only cull_idle_timeout applies). Checked every cull_interval seconds.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._page_left = {}  # kernel id -> when its last connection closed

    def notify_connect(self, kernel_id):
        super().notify_connect(kernel_id)
        self._page_left.pop(kernel_id, None)

    def notify_disconnect(self, kernel_id):
        super().notify_disconnect(kernel_id)
        if self._kernel_connections.get(kernel_id) == 0:
            self._page_left[kernel_id] = utcnow()

    async def cull_kernel_if_idle(self, kernel_id):
        """Cull a kernel whose page left ``cull_disconnected_timeout`` ago, else as Jupyter does."""
        kernel = self._kernels.get(kernel_id)
        left = self._page_left.get(kernel_id)
        timeout = self.cull_disconnected_timeout
        if (kernel is not None and left is not None and timeout > 0
                and getattr(kernel, "execution_state", None) != "busy"):
            quiet = utcnow() - max(left, getattr(kernel, "last_activity", left))
            if quiet > timedelta(seconds=timeout):
                self.log.warning("Culling kernel %s: its page left, quiet for %d s", kernel_id,
                                 quiet.total_seconds())
                self._page_left.pop(kernel_id, None)
                await ensure_async(self.shutdown_kernel(kernel_id))
                return
        await ensure_async(super().cull_kernel_if_idle(kernel_id))


def voila_command(host: str, port: int, cull_idle: int, cull_disconnected: int, cull_interval: int,
                  pool_size: int, pool_refill_delay: float, notebook: Path = NOTEBOOK,
                  token: str | None = None) -> list[str]:
    """The Voilà command line serving ``notebook`` on ``host:port`` with these culling and pool settings.

    With ``pool_size`` > 0, Voilà starts that many kernels and runs the notebook in each (preheated:
    the page's HTML is ready and the dashboard has reached the API and read the sample); a page
    takes one, and ``pool_refill_delay`` seconds later Voilà starts its replacement. A page that finds
    the pool empty starts its own kernel and waits for the notebook to run. With ``token``, Voilà asks
    for it (Jupyter Server's login: ``?token=`` once per browser, then a cookie); without, anyone who
    reaches the port opens the page.
    """
    command = [sys.executable, "-m", "emolib.voila_launch"]  # Voilà, safe against legacy ws clients
    manager = f"{RoomKernelManager.__module__}.{RoomKernelManager.__name__}"
    command += [
        str(notebook), "--no-browser", f"--port={port}", f"--Voila.ip={host}",
        f"--VoilaConfiguration.multi_kernel_manager_class={manager}",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle}",
        f"--MappingKernelManager.cull_interval={cull_interval}",
        "--MappingKernelManager.cull_connected=True",
        f"--RoomKernelManager.cull_disconnected_timeout={cull_disconnected}",
        # Voilà's page never receives the _xsrf cookie its close beacon must send back, so every
        # "shut my kernel down" request is refused with 403 (voila-dashboards/voila#1458). A forged
        # request can do nothing a visitor cannot (README, "What a viewer can do"): accept the beacon.
        "--Voila.tornado_settings=disable_check_xsrf=True",
        # nbclient drops a cell's output that comes later than iopub_timeout (4 s) after the cell
        # ran: with ten pages starting at once on two busy cores, the dashboard widget itself was lost.
        f"--VoilaExecutor.iopub_timeout={IOPUB_TIMEOUT}",
    ]
    if token:
        command.append(f"--Voila.token={token}")
    if pool_size > 0:
        command += ["--preheat_kernel=True", f"--pool_size={pool_size}",
                    f"--VoilaKernelManager.fill_delay={pool_refill_delay}"]
    return command


def api_command(port: int, model: str | None = None, detector: str | None = None,
                runtime: str = "auto") -> list[str]:
    """The ``emolib serve`` command line of the shared prediction API, on loopback."""
    command = [sys.executable, "-m", "emolib", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--runtime", runtime]
    if model:
        command += ["--model", model]
    if detector:
        command += ["--detector", detector]
    return command


def wait_for_api(url: str, process: subprocess.Popen, timeout: float = API_START_TIMEOUT) -> None:
    """Return once ``GET {url}/test`` answers; raise RuntimeError if the API exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the prediction API exited with status {process.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/test", timeout=5) as response:
                if response.status == 200:
                    return
        time.sleep(0.5)
    raise RuntimeError(f"the prediction API did not answer at {url} within {timeout:.0f} s")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None, timeout: float = 20) -> None:
    """Terminate ``process`` (if still running), then kill it if it has not exited within ``timeout`` s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def run_room(*, host: str, port: int, api_port: int, model: str | None, detector: str | None,
             runtime: str, cull_idle: int, cull_disconnected: int, cull_interval: int, pool_size: int,
             pool_refill_delay: float, token: str | None, in_process: bool) -> int:
    """Start the API (unless ``in_process``), then Voilà; stop both when either ends or on a signal.

    Parameters are ``emolib dashboard``'s options (see ``--help``): ``host``, ``port`` Voilà's address;
    ``api_port`` the API's loopback port (0: any free one); ``model`` (None: ``$EMOLIB_MODEL``, else the
    shipped default), ``detector`` and ``runtime`` the API's; the rest go to :func:`voila_command`.

    Returns
    -------
    int
        Voilà's exit status; 1 when the API stopped first; 0 on an interrupt.
    """
    env = dict(os.environ)
    api = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so that `finally` stops the children
    try:
        model = model or env.get(MODEL_ENV)
        found, problem = resolve_start_model(model)
        if found is None:  # the page explains it; an API could not even start
            print(f"emolib dashboard: {problem}", file=sys.stderr, flush=True)
        elif model:
            env[MODEL_ENV] = str(found)  # the kernels start with the API's model
        if in_process or found is None:
            env.pop(API_URL_ENV, None)
        else:
            api_port = api_port or free_port()
            url = f"http://127.0.0.1:{api_port}"
            api = subprocess.Popen(api_command(api_port, model and str(found), detector, runtime), env=env)
            wait_for_api(url, api)
            env[API_URL_ENV] = url
            print(f"emolib dashboard: predictions by the API at {url}", flush=True)
        where = "localhost" if host in ("127.0.0.1", "localhost") else socket.gethostname()
        query = f"/?token={token}" if token else ""
        print(f"emolib dashboard on http://{where}:{port}{query} (kernels: closed pages go at once or "
              f"after {cull_disconnected} s idle, open idle tabs after {cull_idle} s)", flush=True)
        voila = subprocess.Popen(voila_command(host, port, cull_idle, cull_disconnected, cull_interval,
                                               pool_size, pool_refill_delay, token=token), env=env)
        try:
            while voila.poll() is None:
                if api is not None and api.poll() is not None:
                    print("emolib dashboard: the prediction API stopped; stopping Voilà", file=sys.stderr)
                    return 1
                time.sleep(1)
            return voila.returncode
        finally:
            stop_process(voila)
    except KeyboardInterrupt:
        return 0
    finally:
        stop_process(api)

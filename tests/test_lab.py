"""JupyterLab as a front end: the dashboard notebook, run inside JupyterLab in Chromium, predicts a sample.

``make lab`` starts the same server on the repository; here it serves a temporary copy of the dashboard
notebook (so nothing in the checkout is touched) with its own settings and workspace folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from emolib import paths

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("EMOLIB_CHROMIUM", "/usr/bin/chromium")
START_S = 180  # JupyterLab's server on a loaded 2-core host
KERNEL_MS = 300_000  # the kernel imports TensorFlow and loads the model
FRENCH_LABELS = {"Surprise", "Peur", "Dégoût", "Joie", "Tristesse", "Colère", "Neutre", "Mépris"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``jupyter lab`` on a free port, serving a folder that holds a copy of the dashboard notebook."""
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is required in CI at {CHROMIUM} (run `make browser`)")
        pytest.skip(f"Chromium not found at {CHROMIUM} (run `make browser`)")
    root = tmp_path_factory.mktemp("lab")
    shutil.copyfile(REPO / "dashboards" / "emotions.ipynb", root / "emotions.ipynb")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(16)
    env = {**os.environ, "EMOLIB_MODEL": str(paths.DEFAULT_MODEL_DIR), "PYTHONUNBUFFERED": "1",
           **{name: str(root / f".{name.lower()}") for name in (
               "JUPYTER_CONFIG_DIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR",
               "JUPYTER_RUNTIME_DIR")}}
    log = open(root / ".lab.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    try:
        assert server.poll() is None, (root / ".lab.log").read_text()[-4000:]
        yield f"http://127.0.0.1:{port}/lab/tree/emotions.ipynb?token={token}", root / ".lab.log"
    finally:
        server.terminate()  # on SIGTERM JupyterLab shuts its kernels down first
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=60)
        server.kill()  # nothing left to do when it has exited
        log.close()


def wait_for_connected_idle_kernel(url: str) -> None:
    """Wait until the server's one kernel has started and the page is connected to it (the REST API)."""
    base, token = url.split("/lab/", 1)[0], url.rsplit("token=", 1)[1]
    deadline = time.monotonic() + KERNEL_MS / 1000
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10) as response:
            kernels = json.load(response)
        if kernels and kernels[0]["execution_state"] == "idle" and kernels[0]["connections"] > 0:
            return
        time.sleep(1)
    raise AssertionError(f"no idle, connected kernel: {kernels}")


def test_the_dashboard_notebook_runs_in_jupyterlab_and_predicts_a_sample(lab):
    from playwright.sync_api import sync_playwright

    url, log = lab
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(KERNEL_MS)
            page.goto(url, timeout=START_S * 1000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", state="visible")
            wait_for_connected_idle_kernel(url)
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            page.click("button.emolib-sample")  # waits until the dashboard's widgets are in the output
            count = page.wait_for_selector(".emolib-faces-count", state="visible")
            faces = int(re.search(r"Faces detected: (\d+)", count.inner_text()).group(1))
            assert faces == 1, page.inner_text(".emolib-results")
            label = page.locator(".emolib-face-card .emolib-face-label").inner_text().strip()
            assert label in FRENCH_LABELS, label
        except Exception as error:
            raise AssertionError(f"{error}\n--- JupyterLab log ---\n{log.read_text()[-4000:]}") from None
        finally:
            browser.close()

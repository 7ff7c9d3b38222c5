"""JupyterLab as a front end: the dashboard notebook, run inside JupyterLab in Chromium, predicts a sample.

``make lab`` starts the same server on the repository; here it serves a temporary copy of the dashboard
notebook (so nothing in the checkout is touched) with its own settings and workspace folders.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
import time
import urllib.request

import pytest
from helpers import CHROMIUM_ARGS, REPO, Server, free_port

from emolib import paths

pytestmark = [pytest.mark.browser, pytest.mark.slow]

START_S = 180  # JupyterLab's server on a loaded 2-core host
KERNEL_MS = 300_000  # the kernel imports TensorFlow and loads the model
FRENCH_LABELS = {"Surprise", "Peur", "Dégoût", "Joie", "Tristesse", "Colère", "Neutre", "Mépris"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, chromium_path):
    """``jupyter lab`` on a free port, serving a folder that holds a copy of the dashboard notebook."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copyfile(REPO / "dashboards" / "emotions.ipynb", root / "emotions.ipynb")
    port = free_port()
    token = secrets.token_hex(16)
    env = {**os.environ, "EMOLIB_MODEL": str(paths.DEFAULT_MODEL_DIR), "PYTHONUNBUFFERED": "1",
           **{name: str(root / f".{name.lower()}") for name in (
               "JUPYTER_CONFIG_DIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR",
               "JUPYTER_RUNTIME_DIR")}}
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", *(["--allow-root"] if os.geteuid() == 0 else [])]
    # on SIGTERM JupyterLab shuts its kernels down first
    with Server(command, port, root / ".lab.log", env=env, cwd=root, start_s=START_S, stop_s=60) as server:
        yield f"{server.url}/lab/tree/emotions.ipynb?token={token}", server.log_path


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


def test_the_dashboard_notebook_runs_in_jupyterlab_and_predicts_a_sample(lab, playwright_driver,
                                                                          chromium_path):
    url, log = lab
    browser = playwright_driver.chromium.launch(executable_path=chromium_path, headless=True,
                                                args=CHROMIUM_ARGS)
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

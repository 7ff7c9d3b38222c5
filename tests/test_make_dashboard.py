"""`make dashboard` (the README's first command) serves the dashboard over HTTP, with its shared API and
kernel culling."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.browser
def test_make_dashboard_answers_http(tmp_path):
    port = free_port()
    log = open(tmp_path / "voila.log", "w")
    server = subprocess.Popen(["make", "--no-print-directory", "dashboard", f"PORT={port}"], cwd=REPO,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        page = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as response:
                    page = (response.status, response.read().decode("utf-8", "replace"))
                    break
            except OSError:
                time.sleep(1)
        assert page is not None, (tmp_path / "voila.log").read_text()[-2000:]
        status, html = page
        assert status == 200
        assert "voila" in html.lower() or "jupyter" in html.lower()
        # one shared prediction API, and Jupyter Server's kernel culler switched on
        text = (tmp_path / "voila.log").read_text()
        assert "predictions by the API at http://127.0.0.1:" in text, text[-3000:]
        assert re.search(r"Culling kernels with idle durations > \d+ seconds", text), text[-3000:]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()

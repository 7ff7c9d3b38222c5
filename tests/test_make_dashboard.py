"""`make dashboard` (the README's first command) serves the dashboard over HTTP, with its shared API and
kernel culling; a viewer's kernel takes widget messages only, and `--token` puts a login in front."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import uuid
from pathlib import Path

import pytest
from helpers import Server, free_port

TOKEN = "room-42-token"


def make_dashboard(log_path: Path, dashboard_args: str = "") -> Server:
    """``make dashboard`` on a free port (with ``DASHBOARD_ARGS``), once Voilà listens."""
    port = free_port()
    command = ["make", "--no-print-directory", "dashboard", f"PORT={port}",
               f"DASHBOARD_ARGS={dashboard_args}"]
    return Server(command, port, log_path, start_s=240, own_session=True)


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, str, str]:
    """(status, Location header, body) of ``GET path``, redirects not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    return response.status, response.getheader("Location", ""), response.read().decode("utf-8", "replace")


def page_kernel_id(html: str) -> str:
    return re.search(r'"kernelId":\s*"([0-9a-f-]+)"', html).group(1)


def kernel_replies(port: int, kernel_id: str, marker: Path, headers: dict | None = None) -> list[str]:
    """Send a page's kernel an ``execute_request`` (code that would write ``marker``), then a
    ``kernel_info_request``, as any client on the network could; the message types that come back."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    def message(msg_type: str, content: dict) -> str:
        header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": uuid.uuid4().hex,
                  "username": "", "version": "5.3", "date": ""}
        return json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                           "channel": "shell", "buffers": []})

    async def talk() -> list[str]:
        url = f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels"
        ws = await websocket_connect(HTTPRequest(url, headers=headers or {}))
        code = f"open({str(marker)!r}, 'w').write('code ran')"
        ws.write_message(message("execute_request", {"code": code, "silent": False, "store_history": False,
                                                     "user_expressions": {}, "allow_stdin": False}))
        ws.write_message(message("kernel_info_request", {}))
        seen = []
        while "kernel_info_reply" not in seen:
            frame = await asyncio.wait_for(ws.read_message(), 60)
            assert frame is not None, "the kernel websocket closed"
            if isinstance(frame, str):
                seen.append(json.loads(frame)["header"]["msg_type"])
        ws.close()
        return seen

    return asyncio.run(talk())


def test_the_dashboard_passes_its_token_to_voila_and_refuses_an_empty_one():
    from emolib import commands
    from emolib.commands import dashboard as dashboard_command
    from emolib.dashboard import voila_command

    settings = {"host": "0.0.0.0", "port": 8866, "cull_idle": 900, "cull_disconnected": 45,
                "cull_interval": 10, "pool_size": 10, "pool_refill_delay": 30}
    assert not [arg for arg in voila_command(**settings) if "token" in arg]
    assert f"--Voila.token={TOKEN}" in voila_command(**settings, token=TOKEN)
    args = commands.build_parser().parse_args(["dashboard", "--token", " "])
    with pytest.raises(ValueError, match="--token is empty"):
        dashboard_command.run(args)


@pytest.mark.browser
def test_make_dashboard_answers_http_and_its_kernels_run_no_code_sent_to_them(tmp_path):
    log_path = tmp_path / "voila.log"
    with make_dashboard(log_path) as server:
        port = server.port
        status, _, html = get(port, "/")
        assert status == 200, log_path.read_text()[-3000:]
        assert "voila" in html.lower() or "jupyter" in html.lower()
        # no login: anyone reaching the port talks to the page's kernel, but only in widget messages
        kernel = page_kernel_id(html)
        assert get(port, f"/api/kernels/{kernel}")[0] == 200
        marker = tmp_path / "code-ran"
        replies = kernel_replies(port, kernel, marker)
        assert "execute_reply" not in replies and not marker.exists()
        text = log_path.read_text()
        assert 'Received message of type "execute_request", which is not allowed' in text
        # one shared prediction API, and Jupyter Server's kernel culler switched on
        assert "predictions by the API at http://127.0.0.1:" in text, text[-3000:]
        assert re.search(r"Culling kernels with idle durations > \d+ seconds", text), text[-3000:]


@pytest.mark.browser
def test_make_dashboard_with_a_token_lets_in_only_who_gives_it(tmp_path):
    log_path = tmp_path / "voila.log"
    with make_dashboard(log_path, f"--token={TOKEN} --pool-size=0") as server:
        port = server.port
        status, location, _ = get(port, "/")
        assert status == 302 and location.startswith("/login"), (status, location)
        assert get(port, "/?token=wrong")[0] == 302
        status, _, html = get(port, f"/?token={TOKEN}")
        assert status == 200 and "voila" in html.lower(), log_path.read_text()[-3000:]
        kernel = page_kernel_id(html)
        assert get(port, f"/api/kernels/{kernel}")[0] == 403
        with pytest.raises(Exception, match="403"):
            kernel_replies(port, kernel, tmp_path / "never")
        authorized = {"Authorization": f"token {TOKEN}"}
        assert get(port, f"/api/kernels/{kernel}", authorized)[0] == 200
        assert "kernel_info_reply" in kernel_replies(port, kernel, tmp_path / "never", authorized)
        assert f":{port}/?token={TOKEN}" in log_path.read_text()  # the URL to hand out

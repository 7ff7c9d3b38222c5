"""Joining Ray: a local cluster by default, or one at an address (``--ray ADDRESS`` / ``RAY_ADDRESS``).

Ray is optional (the ``ray`` extra); without it, :func:`connect` says how to install it.
:func:`local_cluster` runs a Ray head on this machine for the length of a ``with`` block (tests and
benchmarks).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = 'Ray is not installed: pip install -e ".[ray]" (or pip install "ray[data]")'

#: ``ray start`` option → the port file its agent writes (``<session>/<name>_<node id>``)
AGENT_PORTS = {"--metrics-export-port": "metrics_export_port",
               "--dashboard-agent-grpc-port": "metrics_agent_port",
               "--dashboard-agent-listen-port": "dashboard_agent_listen_port",
               "--runtime-env-agent-port": "runtime_env_agent_port"}


def connect(address: str | None = None):
    """The ``ray`` module, initialised: reused if this process already joined a cluster.

    Parameters
    ----------
    address : str, optional
        A cluster to join (``host:6379``, ``ray://host:10001``, or ``auto`` for the cluster that
        ``ray start --head`` started on this machine). None or "": ``$RAY_ADDRESS`` if set, else a
        new local cluster on this machine.

    Raises
    ------
    ValueError
        Ray is not installed (the message says how to install it).
    """
    try:
        import ray
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, configure_logging=False)
    return ray


@dataclass
class Head:
    """A running local Ray head: the address to join and the pid of its ``ray start`` process."""

    address: str
    pid: int


@contextmanager
def local_cluster(num_cpus: int, log: str | os.PathLike, object_store_mb: int = 512, timeout: float = 300):
    """A Ray head on this machine (``ray start --head --block``) for the block; yields a :class:`Head`.

    A Ray node stops unless its agents write their port files within a fixed 15 s, which a busy
    machine misses (the agents' Python start-up alone can take longer: ray-project/ray issue
    65983). Here the agents get fixed free ports and their port files are written as soon as the
    node's session exists, so the node does not wait for them. On exit the head and every process
    it started are stopped, and its temporary folder removed.
    """
    ray_command = Path(sys.executable).parent / "ray"
    if not ray_command.exists():
        raise ValueError(INSTALL_HINT)
    temp = Path(tempfile.mkdtemp(prefix="emolib-ray-"))
    ports = {option: _free_port() for option in ("--port", *AGENT_PORTS)}
    command = [str(ray_command), "start", "--head", "--block", f"--num-cpus={num_cpus}", "--num-gpus=0",
               "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
               f"--object-store-memory={object_store_mb * 2**20}",
               *(f"{option}={port}" for option, port in ports.items())]
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"  # drivers join without a token (Ray 2.5x: token auth by default)
    with open(log, "ab") as output:
        offset = output.tell()
        head = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_started(head, Path(log), offset, temp, ports, timeout)
        yield Head(f"127.0.0.1:{ports['--port']}", head.pid)
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_started(head: subprocess.Popen, log: Path, offset: int, temp: Path, ports: dict,
                  timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while head.poll() is None and time.monotonic() < deadline:
        for gcs_file in temp.glob("session_*/gcs_server_port_*"):
            node_id = gcs_file.name.removeprefix("gcs_server_port_")
            for option, name in AGENT_PORTS.items():
                port_file = gcs_file.parent / f"{name}_{node_id}"
                if not port_file.exists():
                    port_file.write_text(str(ports[option]))
        if b"Ray runtime started" in log.read_bytes()[offset:]:
            return
        time.sleep(0.1)
    raise RuntimeError(f"a local Ray head did not start (see {log})")


def _stop(head: subprocess.Popen) -> None:
    """SIGTERM the blocking ``ray start`` (it stops the node's processes), then its process group."""
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    head.wait()

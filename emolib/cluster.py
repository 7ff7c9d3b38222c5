"""Joining Ray: a local cluster by default, or one at an address (``--ray ADDRESS`` / ``RAY_ADDRESS``).

Ray is optional (the ``ray`` extra); without it, :func:`connect` says how to install it.
:func:`local_cluster` runs a Ray head on this machine for the length of a ``with`` block (tests and
benchmarks).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

INSTALL_HINT = 'Ray is not installed: pip install -e ".[ray]" (or pip install "ray[data]")'


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


@contextmanager
def local_cluster(num_cpus: int, log: str | os.PathLike, attempts: int = 5, timeout: float = 300):
    """A Ray head on this machine (``ray start --head --block``) for the block; yields its address.

    A Ray node must start its agents within a fixed 15 s, which a busy machine can miss
    (ray-project/ray issue 65983): a start that fails is tried again, up to ``attempts`` times, each in
    its own process so that nothing of it is left behind. On exit the head and every process it
    started are stopped.
    """
    if not (Path(sys.executable).parent / "ray").exists():
        raise ValueError(INSTALL_HINT)
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    for attempt in range(1, attempts + 1):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        offset = Path(log).stat().st_size if Path(log).exists() else 0
        with open(log, "ab") as output:
            head = subprocess.Popen(
                [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={port}",
                 f"--num-cpus={num_cpus}", "--num-gpus=0", "--include-dashboard=false",
                 "--disable-usage-stats"],
                env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        if _started(head, Path(log), offset, timeout):
            break
        _stop(head)
        if attempt == attempts:
            raise RuntimeError(f"a local Ray head did not start in {attempts} attempts; see {log}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        _stop(head)


def _started(head: subprocess.Popen, log: Path, offset: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and head.poll() is None:
        if b"Ray runtime started" in log.read_bytes()[offset:]:
            return True
        time.sleep(0.5)
    return False


def _stop(head: subprocess.Popen) -> None:
    """SIGTERM the blocking ``ray start`` (it stops the node's processes), then its process group."""
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    head.wait()

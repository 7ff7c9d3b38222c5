"""Joining Ray: a local cluster by default, or one at an address (``--ray ADDRESS`` / ``RAY_ADDRESS``).

Ray is optional (the ``ray`` extra); without it, :func:`connect` says how to install it.
"""

from __future__ import annotations

import os

INSTALL_HINT = 'Ray is not installed: pip install -e ".[ray]" (or pip install "ray[data]")'
#: tries at starting a local Ray: on a busy machine its node can miss a fixed 15 s start-up wait (its
#: dashboard agent is late to write its port files, ray-project/ray issue 65983)
LOCAL_START_ATTEMPTS = 3


def connect(address: str | None = None, num_cpus: int | None = None):
    """The ``ray`` module, initialised: reused if this process already joined a cluster.

    Parameters
    ----------
    address : str, optional
        A cluster to join (``ray://host:10001``, ``host:6379`` or ``auto`` for the cluster that
        ``ray start --head`` started on this machine). None or "": ``$RAY_ADDRESS`` if set, else a
        new local cluster on this machine.
    num_cpus : int, optional
        CPUs of a new local cluster (default: all of this machine's).

    Raises
    ------
    ValueError
        Ray is not installed (the message says how to install it).
    """
    try:
        import ray
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    local = {"num_cpus": num_cpus} if address is None else {}
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(address=address, include_dashboard=False, configure_logging=False, **local)
            break
        except Exception as error:
            ray.shutdown()
            if address is not None or attempt == LOCAL_START_ATTEMPTS or "timed out" not in str(error):
                raise
    return ray

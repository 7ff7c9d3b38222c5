"""Joining Ray: a local cluster by default, or one at an address (``--ray ADDRESS`` / ``RAY_ADDRESS``).

Ray is optional (the ``ray`` extra); without it, :func:`connect` says how to install it.
"""

from __future__ import annotations

INSTALL_HINT = 'Ray is not installed: pip install -e ".[ray]" (or pip install "ray[data]")'


def connect(address: str | None = None):
    """The ``ray`` module, initialised: reused if this process already joined a cluster.

    Parameters
    ----------
    address : str, optional
        A cluster to join (``ray://host:10001``, ``host:6379`` or ``auto`` for the cluster that
        ``ray start --head`` started on this machine). None or "": ``$RAY_ADDRESS`` if set, else a
        new local cluster using this machine's CPUs and GPUs.

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

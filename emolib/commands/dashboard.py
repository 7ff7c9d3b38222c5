"""``emolib dashboard [--host] [--port] [--model] [--token] [--in-process] ...``: the dashboard for a room,
one shared prediction API and Voilà (:mod:`emolib.dashboard`)."""

from __future__ import annotations

from emolib import dashboard


def run(args) -> int:
    """Refuse an empty ``--token``, then run the API and Voilà until either stops."""
    if args.token is not None and not args.token.strip():
        raise ValueError("--token is empty: give the token viewers must type, or leave --token out")
    return dashboard.run_room(host=args.host, port=args.port, api_port=args.api_port, model=args.model,
                              detector=args.detector, runtime=args.runtime, cull_idle=args.cull_idle,
                              cull_disconnected=args.cull_disconnected, cull_interval=args.cull_interval,
                              pool_size=args.pool_size, pool_refill_delay=args.pool_refill_delay,
                              token=args.token, in_process=args.in_process)

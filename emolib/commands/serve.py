"""``emolib serve [--host] [--port] [--model] [--detector] [--runtime] [--cors-origin]``: the REST API."""

from __future__ import annotations

from emolib import serve


def run(args) -> int:
    """Run the API with uvicorn on ``--host`` / ``--port``."""
    import uvicorn

    app = serve.create_app(model=args.model, detector=args.detector, cors_origins=args.cors_origins,
                           runtime=args.runtime)
    detector = app.state.predictor.detector.name
    print(f"emolib serve: http://{args.host}:{args.port} (detector {detector}, runtime "
          f"{app.state.predictor.runtime}; docs at /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0

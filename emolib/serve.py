"""REST API (FastAPI): ``POST /predict``, ``GET /test``, ``GET /health``, the web page ``GET /``, docs at ``/docs``.

Contract (DESIGN.md): ``POST /predict`` with the multipart field ``file`` returns the result dict of
:class:`emolib.predict.EmotionPredictor`; ``GET /test`` returns ``{"status": "ok"}``; bad input is a
4xx with ``{"detail": ...}``, never a 500:

=====================================================  ======
empty file                                             400
corrupt or truncated image                             400
not an image / unsupported format                      415
upload larger than ``max_upload_bytes`` (10 MB)        413
more pixels than ``max_pixels`` (40 MP)                413
missing ``file`` field, not multipart                  422
=====================================================  ======

``POST /predict?explain=true`` adds to each face ``"saliency": {"png": base64 PNG overlay, "size": [h, w]}``
(:mod:`emolib.explain`); without it the response is unchanged.

``GET /`` serves ``emolib/static/index.html``, a vanilla-JS page that posts a photo to ``/predict``; the
same file opened from disk talks to the API across origins, so CORS is on: by default for the origins
``null`` (``file://`` pages) and ``http://localhost:*`` / ``http://127.0.0.1:*`` (:data:`DEFAULT_CORS_REGEX`);
``cors_origins`` (``emolib serve --cors-origin``) replaces that list (``*``: any origin).

The model and detector load once, in :func:`create_app`. Predictions run in worker threads (at most
``max_concurrency`` at a time, so a burst of large photos cannot exhaust memory); the predictor is
thread-safe. This module imports neither TensorFlow nor Keras until ``create_app`` runs.

Run it with ``python -m emolib serve --port 5000`` (see :func:`run_cli`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from emolib import __version__, imageio

#: Largest accepted upload (the image file itself).
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Room for multipart headers and boundaries on top of the file.
MULTIPART_OVERHEAD = 64 * 1024
DEFAULT_MAX_CONCURRENCY = 4
_FILE_HELP = "the photo: JPEG, PNG, WebP, BMP, GIF or TIFF"
_EXPLAIN_HELP = ("add to each face a saliency map of its crop (occlusion sensitivity: where hiding the face "
                 "lowers the predicted emotion most), as a base64 PNG overlay; about 120 extra model passes per face")
#: Origins allowed by default: pages opened from disk (``null``) and any port of localhost.
DEFAULT_CORS_REGEX = r"null|https?://(localhost|127\.0\.0\.1)(:\d+)?"
#: The web client served at ``GET /``.
WEB_PAGE = Path(__file__).with_name("static") / "index.html"


# ---------------------------------------------------------------------------------------------------
# Response schemas (for the OpenAPI docs; the result dict is built by EmotionPredictor)
# ---------------------------------------------------------------------------------------------------

class Box(BaseModel):
    x: int
    y: int
    w: int
    h: int


class Saliency(BaseModel):
    png: str = Field(description="base64 PNG: the face crop the model saw, with its saliency map over it")
    size: list[int] = Field(description="[height, width] of that PNG in pixels")


class FacePrediction(BaseModel):
    emotion: str = Field(description="canonical English emotion name, e.g. 'happy'")
    label: str = Field(description="display name (French by default), e.g. 'Joie'")
    emoji: str
    confidence: float = Field(description="probability of the predicted emotion, in percent (0-100)")
    box: Box = Field(description="face box in image pixels")
    probabilities: dict[str, float] = Field(description="probability (0-1) of every emotion")
    saliency: Saliency | None = Field(None, description="only with explain=true")


class PredictionResult(BaseModel):
    faces_detected: int
    detector: str = Field(description="detector that ran: yunet, haar, or none")
    predictions: list[FacePrediction]


class Status(BaseModel):
    status: str


class ErrorDetail(BaseModel):
    detail: str


_ERRORS = {code: {"model": ErrorDetail, "description": text} for code, text in (
    (400, "empty, corrupt or truncated image"),
    (413, "file or image too large"),
    (415, "not an image, or an unsupported format"),
)}


# ---------------------------------------------------------------------------------------------------
# Upload size limit (pure ASGI, so it also bounds chunked uploads without Content-Length)
# ---------------------------------------------------------------------------------------------------

class UploadLimit:
    """Answer 413 to requests whose body exceeds ``max_body_bytes``, before reading it if possible."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                await JSONResponse({"detail": "invalid Content-Length header"}, 400)(scope, receive, send)
                return
            if int(length) > self.max_body_bytes:
                await JSONResponse({"detail": self._too_large()}, 413)(scope, receive, send)
                return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, self._too_large())
            return message

        await self.app(scope, limited_receive, send)

    def _too_large(self) -> str:
        return f"request too large: the limit is {self.max_body_bytes / 1e6:.1f} MB"


# ---------------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------------

def create_app(model=None, detector=None, *, predictor=None, flip_tta: bool = False, language: str = "fr",
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               max_pixels: int | None = imageio.DEFAULT_MAX_PIXELS,
               max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
               cors_origins: Sequence[str] | None = None) -> FastAPI:
    """Build the API, loading the model and detector now (once).

    Parameters
    ----------
    model : path, LoadedModel or None
        As for :class:`emolib.predict.EmotionPredictor` (None: the shipped model).
    detector : {"yunet", "haar"} or None
        Face detector (None: YuNet if its file is available, else Haar).
    predictor : EmotionPredictor, optional
        Use this predictor instead of building one (``model``, ``detector`` … are then ignored).
    max_upload_bytes : int
        Largest accepted file (413 beyond).
    max_pixels : int or None
        Largest accepted image in pixels (413 beyond).
    max_concurrency : int
        Predictions running at once; further requests wait their turn.
    cors_origins : sequence of str, optional
        Origins browsers may call the API from (``"*"``: any); default :data:`DEFAULT_CORS_REGEX`.
    """
    if predictor is None:
        from emolib.predict import EmotionPredictor  # imports Keras and its backend

        predictor = EmotionPredictor(model=model, detector=detector, flip_tta=flip_tta, language=language,
                                     max_pixels=max_pixels)
    _ = predictor.detector  # load the detector at start-up too, not on the first request
    limiter = anyio.CapacityLimiter(max_concurrency)
    info = predictor.info()

    app = FastAPI(
        title="emolib emotion API",
        version=__version__,
        description="Detect faces in a photo and classify their emotions "
                    "(angry, disgust, fear, happy, sad, surprise, neutral).",
    )
    app.add_middleware(UploadLimit, max_body_bytes=max_upload_bytes + MULTIPART_OVERHEAD)
    # added last, so outermost: error answers (413 …) carry the CORS headers too
    cors = {"allow_origins": list(cors_origins)} if cors_origins else {"allow_origin_regex": DEFAULT_CORS_REGEX}
    app.add_middleware(CORSMiddleware, allow_methods=["GET", "POST"], allow_headers=["*"], **cors)
    app.state.predictor = predictor

    @app.get("/", include_in_schema=False)
    async def web_page() -> FileResponse:
        return FileResponse(WEB_PAGE, media_type="text/html")

    @app.get("/test", response_model=Status, summary="Liveness check")
    async def test() -> dict:
        return {"status": "ok"}

    @app.get("/health", summary="Model, detector and limits in use")
    async def health() -> dict:
        import keras

        return {"status": "ok", "emolib_version": __version__, "keras_backend": keras.backend.backend(),
                **info, "max_upload_bytes": max_upload_bytes, "max_pixels": max_pixels}

    @app.post("/predict", response_model=PredictionResult, responses=_ERRORS,
              response_model_exclude_unset=True, summary="Faces and emotions of an uploaded photo")
    async def predict(file: Annotated[UploadFile, File(description=_FILE_HELP)],
                      explain: Annotated[bool, Query(description=_EXPLAIN_HELP)] = False):
        data = await file.read(max_upload_bytes + 1)
        await file.close()
        if len(data) > max_upload_bytes:
            raise HTTPException(413, f"file too large: the limit is {max_upload_bytes / 1e6:.1f} MB")
        if not data:
            raise HTTPException(400, "empty file: no image received")
        try:
            return await anyio.to_thread.run_sync(lambda: predictor.predict(data, explain=explain),
                                                  limiter=limiter)
        except imageio.ImageTooLargeError as error:
            raise HTTPException(413, str(error)) from None
        except imageio.UnsupportedImageError as error:
            raise HTTPException(415, str(error)) from None
        except ValueError as error:
            raise HTTPException(400, str(error)) from None

    return app


def run_cli(args) -> int:
    """``emolib serve``: run the API with uvicorn on ``--host`` / ``--port``."""
    import uvicorn

    app = create_app(model=args.model, detector=args.detector, cors_origins=args.cors_origins)
    detector = app.state.predictor.detector.name
    print(f"emolib serve: http://{args.host}:{args.port} (detector {detector}; docs at /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0

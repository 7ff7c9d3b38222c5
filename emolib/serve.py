"""REST API (FastAPI): ``POST /predict``, ``GET /test``, ``GET /health``, web page ``/``, docs ``/docs``.

Contract (docs/architecture.md): ``POST /predict`` with the multipart field ``file`` returns the result
dict of :class:`emolib.predict.EmotionPredictor`; ``GET /test`` returns ``{"status": "ok"}``; bad input
is a 4xx with ``{"detail": ...}``, never a 500:

=====================================================  ======
empty file                                             400
corrupt or truncated image                             400
not an image / unsupported format                      415
upload larger than ``max_upload_bytes`` (10 MB)        413
more pixels than ``max_pixels`` (40 MP)                413
missing ``file`` field, not multipart                  422
=====================================================  ======

Every answer is documented in the OpenAPI schema (``/openapi.json``); ``bench/fuzz_api.py`` fuzzes a
running server from that schema (Schemathesis) and finds no 5xx and no answer outside it.

``POST /predict?explain=true`` adds to each face ``"saliency": {"png": base64 PNG overlay, "size": [h, w]}``
(:mod:`emolib.explain`); without it the response is unchanged.

``GET /`` serves ``emolib/static/index.html``, a vanilla-JS page that posts a photo to ``/predict``; the
same file opened from disk talks to the API across origins, so CORS is on: by default for the origins
``null`` (``file://`` pages) and ``http://localhost:*`` / ``http://127.0.0.1:*`` (:data:`DEFAULT_CORS_REGEX`);
``cors_origins`` (``emolib serve --cors-origin``) replaces that list (``*``: any origin).

The model and detector load once, in :func:`create_app`. Predictions run in worker threads (at most
``max_concurrency`` at a time, so a burst of large photos cannot exhaust memory); the predictor is
thread-safe. This module imports neither TensorFlow nor Keras until ``create_app`` runs.

``POST /predict`` also takes optional query parameters, so that one server can answer every viewer of
the dashboard with the settings of that viewer: ``whole_image`` (the photo is one face crop),
``detector``, ``flip_tta``, ``language`` and ``model`` (the start-up model, or one found by
:func:`emolib.modelcards.find_models`, never any other path). Each combination is built once, sharing the
loaded model and detector (see :class:`PredictorChoices`).

Run it with ``python -m emolib serve --port 5000`` (:mod:`emolib.commands.serve`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from emolib import __version__, imageio, modelcards
from emolib.results import PredictionResult

#: Largest accepted upload (the image file itself).
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Room for multipart headers and boundaries on top of the file.
MULTIPART_OVERHEAD = 64 * 1024
DEFAULT_MAX_CONCURRENCY = 4
_FILE_HELP = "the photo: JPEG, PNG, WebP, BMP, GIF or TIFF"
_EXPLAIN_HELP = ("add to each face a saliency map of its crop (occlusion sensitivity: where hiding the face "
                 "lowers the predicted emotion most), as a base64 PNG overlay; ~120 more model passes a face")
#: Origins allowed by default: pages opened from disk (``null``) and any port of localhost.
DEFAULT_CORS_REGEX = r"null|https?://(localhost|127\.0\.0\.1)(:\d+)?"
#: The web client served at ``GET /``.
WEB_PAGE = Path(__file__).with_name("static") / "index.html"
_MODEL_HELP = "a shipped model's name or a listed model directory (default: the start-up model)"
#: any registered detector, plug-ins included; an unknown name is a 400 that lists them
_DETECTOR_HELP = ("face detector: a name of emolib.detect.list_detectors(), e.g. yunet, haar "
                  "(default: the start-up one)")


# ---------------------------------------------------------------------------------------------------
# Response schemas (for the OpenAPI docs): the result's own in emolib.results, the service's here
# ---------------------------------------------------------------------------------------------------

class Status(BaseModel):
    status: str


class ModelInfo(BaseModel):
    path: str
    name: str
    backbone: str | None
    labels: list[str] = Field(description="the classes, in the model's output order")
    input_size: list[int] = Field(description="[height, width] of the face crops the model takes")
    channels: int
    metrics: dict[str, Any] | None = Field(description="the metrics of the model's card")
    uncertain_below: dict[str, Any] | None = Field(
        description="the card's 'not sure' threshold: confidence (percent), target precision, coverage ...")
    temperature: float | None = Field(description="calibration temperature (None: not calibrated)")


class DetectorInfo(BaseModel, extra="allow"):
    name: str = Field(description="yunet, haar, a plug-in's name, or none")


class Health(BaseModel):
    status: str
    emolib_version: str
    keras_backend: str | None = Field(description="None on the ONNX runtime")
    model: ModelInfo
    detector: DetectorInfo = Field(description="the detector's name and settings (they depend on it)")
    runtime: str
    flip_tta: bool
    language: str
    max_upload_bytes: int
    max_pixels: int | None


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
# Per-request settings
# ---------------------------------------------------------------------------------------------------

class PredictorChoices:
    """The start-up predictor and its variants for other settings, each built once, on first request.

    Variants share the loaded model (and the detector, when it is the same one), so another flip TTA or
    language costs nothing and another detector or model costs only itself.

    Parameters
    ----------
    predictor : EmotionPredictor
        The start-up predictor (its settings are the defaults of every request).
    model_dirs : iterable of paths, optional
        Where requests may pick another model (:func:`emolib.modelcards.find_models`; default
        :func:`emolib.modelcards.model_search_dirs`).
    runtime : {"auto", "keras", "onnx"}
        What runs another model a request picks (see :class:`emolib.predict.EmotionPredictor`).
    """

    def __init__(self, predictor, model_dirs=None, runtime: str = "auto"):
        self.default = predictor
        self.model_dirs = tuple(modelcards.model_search_dirs() if model_dirs is None else model_dirs)
        self._made = {}
        self._loaded = {self._model_dir(predictor.loaded.path): predictor.loaded}
        self.runtime = runtime
        self._lock = threading.Lock()

    @staticmethod
    def _model_dir(path) -> Path:
        path = Path(path).resolve()
        return path if path.is_dir() else path.parent

    def _allowed_model(self, model: str) -> Path:
        try:  # a name the file system refuses (too long, a NUL ...) is not a listed model either
            shipped = modelcards.SHIPPED_MODELS_DIR / model
            path = self._model_dir(shipped if Path(model).name == model and shipped.is_dir() else model)
            allowed = path in self._loaded or path in {p.resolve()
                                                       for p in modelcards.find_models(self.model_dirs)}
        except (OSError, ValueError):
            allowed = False
        if allowed:
            return path
        raise ValueError(f"unknown model {model[:200]!r}: use the start-up model or one under "
                         f"{', '.join(str(d) for d in self.model_dirs)}")

    def get(self, model: str | None = None, detector: str | None = None, flip_tta: bool | None = None,
            language: str | None = None):
        """The predictor for these settings (None: the start-up predictor's).

        Raises
        ------
        ValueError
            For a model that is neither the start-up one nor found under ``model_dirs``.
        """
        base = self.default
        model_dir = self._allowed_model(model) if model else self._model_dir(base.loaded.path)
        detector = detector or base.detector.name
        flip_tta = base.flip_tta if flip_tta is None else bool(flip_tta)
        language = language or base.language
        key = (model_dir, detector, flip_tta, language)
        with self._lock:
            if key not in self._made:
                if key == (self._model_dir(base.loaded.path), base.detector.name, base.flip_tta,
                           base.language):
                    self._made[key] = base
                else:
                    from emolib import runtimes
                    from emolib.predict import EmotionPredictor

                    if model_dir not in self._loaded:
                        self._loaded[model_dir] = runtimes.load(model_dir, self.runtime)
                    same_detector = detector == base.detector.name
                    self._made[key] = EmotionPredictor(
                        model=self._loaded[model_dir],
                        detector=base.detector if same_detector else detector,
                        flip_tta=flip_tta, language=language, max_pixels=base.max_pixels)
            return self._made[key]


# ---------------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------------

def create_app(model=None, detector=None, *, predictor=None, flip_tta: bool = False, language: str = "fr",
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               max_pixels: int | None = imageio.DEFAULT_MAX_PIXELS,
               max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
               cors_origins: Sequence[str] | None = None, runtime: str = "auto") -> FastAPI:
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
    runtime : {"auto", "keras", "onnx"}
        What runs the model, as for :class:`emolib.predict.EmotionPredictor` (and the other models
        requests pick).
    """
    if predictor is None:
        from emolib.predict import EmotionPredictor  # the Keras runtime imports Keras and its backend

        predictor = EmotionPredictor(model=model, detector=detector, flip_tta=flip_tta, language=language,
                                     max_pixels=max_pixels, runtime=runtime)
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
    cors = ({"allow_origins": list(cors_origins)} if cors_origins
            else {"allow_origin_regex": DEFAULT_CORS_REGEX})
    app.add_middleware(CORSMiddleware, allow_methods=["GET", "POST"], allow_headers=["*"], **cors)
    app.state.predictor = predictor
    choices = PredictorChoices(predictor, runtime=runtime)

    @app.get("/", response_class=HTMLResponse, summary="Web client: upload a photo, see the faces")
    async def web_page() -> FileResponse:
        return FileResponse(WEB_PAGE, media_type="text/html")

    @app.get("/test", response_model=Status, summary="Liveness check")
    async def test() -> dict:
        return {"status": "ok"}

    @app.get("/health", response_model=Health, summary="Model, detector and limits in use")
    async def health() -> dict:
        keras_backend = None
        if predictor.runtime == "keras":
            import keras

            keras_backend = keras.backend.backend()
        return {"status": "ok", "emolib_version": __version__, "keras_backend": keras_backend, **info,
                "max_upload_bytes": max_upload_bytes, "max_pixels": max_pixels}

    @app.post("/predict", response_model=PredictionResult, responses=_ERRORS,
              response_model_exclude_unset=True, summary="Faces and emotions of an uploaded photo")
    async def predict(
            file: Annotated[UploadFile, File(description=_FILE_HELP)],
            whole_image: Annotated[bool, Query(description="the photo is one face crop")] = False,
            detector: Annotated[str | None, Query(description=_DETECTOR_HELP)] = None,
            flip_tta: Annotated[bool | None, Query(description="average with the mirror image")] = None,
            language: Annotated[Literal["fr", "en"] | None, Query(description="language of labels")] = None,
            model: Annotated[str | None, Query(description=_MODEL_HELP)] = None,
            explain: Annotated[bool, Query(description=_EXPLAIN_HELP)] = False):
        try:
            chosen = await anyio.to_thread.run_sync(choices.get, model, detector, flip_tta, language)
        except (ValueError, FileNotFoundError) as error:
            raise HTTPException(400, str(error)) from None
        data = await file.read(max_upload_bytes + 1)
        await file.close()
        if len(data) > max_upload_bytes:
            raise HTTPException(413, f"file too large: the limit is {max_upload_bytes / 1e6:.1f} MB")
        if not data:
            raise HTTPException(400, "empty file: no image received")
        try:
            return await anyio.to_thread.run_sync(
                lambda: chosen.predict(data, whole_image=whole_image, explain=explain), limiter=limiter)
        except imageio.ImageTooLargeError as error:
            raise HTTPException(413, str(error)) from None
        except imageio.UnsupportedImageError as error:
            raise HTTPException(415, str(error)) from None
        except ValueError as error:
            raise HTTPException(400, str(error)) from None

    return app

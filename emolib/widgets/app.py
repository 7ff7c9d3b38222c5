"""The emotion dashboard: camera or file in, annotated faces out (ipywidgets, served by Voilà).

The flow follows the original chatbot: choose a mode (📷 Camera or 📁 File, or ✨ try a sample), give a
photo, read the result, then **Continue** in the same mode or **Change mode**. Faces the detector misses
can be boxed by hand (✂️ Crop by hand) and classified alone. 🎥 Live keeps predicting on the camera
stream and draws boxes and emotions over the video, with the same predict call as a captured photo.
Everything runs in widget callbacks, so the page never blocks, and every error ends up as a message in
the page, never a traceback.

Where the predictions come from: with ``$EMOLIB_API_URL`` set (``make dashboard`` does it), every viewer's
kernel asks the one shared API over HTTP (:class:`emolib.widgets.remote.RemotePredictor`) and never
imports Keras, so a viewer costs only its widgets; without it (JupyterLab, tests) the model runs in the
kernel itself, imported on the first prediction (or the background preload). The model list comes from
the model cards' JSON (:mod:`emolib.modelcards`), without Keras either.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from emolib import labels as emo_labels
from emolib import paths
from emolib.modelcards import (
    DEFAULT_MODEL_DIR,
    SHIPPED_MODELS_DIR,
    find_models,
    is_model_dir,
    model_search_dirs,
    read_card,
)
from emolib.paths import MODEL_ENV
from emolib.widgets.remote import API_URL_ENV, RemotePredictor
from emolib.widgets.results import ResultView, crop_box, encode, stylesheet
from emolib.widgets.webcam import WebcamWidget

log = logging.getLogger("emolib.widgets")

REPO_ROOT = paths.project_dir()
#: Largest upload accepted (bytes), before any decoding.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
ACCEPTED_TYPES = ".jpg,.jpeg,.png,.webp,image/jpeg,image/png,image/webp"
#: Detector choices; "auto" lets the predictor choose (YuNet when its file is there, else Haar).
DETECTORS = (("automatic", "auto"), ("YuNet", "yunet"), ("Haar cascade", "haar"))
SAMPLE_NAME = "grace_hopper.jpg"
CAMERA_TITLE = "<b>📷 Camera</b> — look at the camera, then press <b>📸 Capture</b>."
LIVE_TITLE = "<b>🎥 Live</b> — boxes and emotions follow the faces while the camera plays."


class DashboardError(Exception):
    """A problem to show to the user as it is (no model, camera trouble …)."""


# ---------------------------------------------------------------------------------------------------
# Models: which ones exist, which one to start with
# ---------------------------------------------------------------------------------------------------

def _test_score(card: dict) -> str:
    """``"test accuracy 85.6 %, macro-F1 0.643 (ferplus test)"`` from a card's metrics, or ``""``."""
    test = (card.get("metrics") or {}).get("test") or {}
    if "accuracy" not in test:
        return ""
    text = f"test accuracy {100 * test['accuracy']:.1f} %"
    if "macro_f1" in test:
        text += f", macro-F1 {test['macro_f1']:.3f}"
    dataset = (card.get("training_data") or {}).get("dataset")
    return f"{text} ({dataset} test)" if dataset else text


def model_label(directory: Path) -> str:
    """A model's name in the settings: its path relative to the repository (and its card name), its
    number of classes and its test score, e.g.
    ``emolib/shipped_models/emolib-ferplus · 8 classes · test accuracy …``."""
    directory = Path(directory)
    try:
        shown = str(directory.resolve().relative_to(REPO_ROOT))
    except ValueError:
        shown = str(directory)
    card = read_card(directory) or {}
    name = card.get("name")
    parts = [f"{shown} ({name})" if name and name not in shown else shown]
    if card.get("labels"):
        parts.append(f"{len(card['labels'])} classes")
    if _test_score(card):
        parts.append(_test_score(card))
    return " · ".join(parts)


def model_card_html(directory: Path | str | None, language: str = "fr") -> str:
    """The classes (display name and emoji) and test scores of a model, from its card, as HTML."""
    card = read_card(directory) if directory else None
    if not card:
        return ""
    names = []
    for emotion in card.get("labels", []):
        try:
            names.append(f"{emo_labels.display_name(emotion, language)} {emo_labels.emoji(emotion)}")
        except (KeyError, ValueError):  # a class emolib has no display name for: shown as it is
            names.append(str(emotion))
    score = _test_score(card)
    return ('<div class="emolib-model-card">'
            f"<b>{len(names)} classes:</b> {html.escape(', '.join(names))}"
            f"{'<br>' + html.escape(score[:1].upper() + score[1:]) if score else ''}</div>")


def resolve_start_model(model: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """The model to start with and, when there is none, why (a message for the page).

    Order: ``model`` if given, else ``$EMOLIB_MODEL``, else the shipped default model. A shipped model
    may be named (``emolib-ferplus``).
    """
    chosen = model or os.environ.get(MODEL_ENV)
    origin = "the model argument" if model else f"${MODEL_ENV}" if chosen else None
    path = Path(chosen).expanduser() if chosen else DEFAULT_MODEL_DIR
    if not path.exists() and path.name == str(chosen) and is_model_dir(SHIPPED_MODELS_DIR / path.name):
        path = SHIPPED_MODELS_DIR / path.name  # a shipped model's name
    if path.is_dir() and is_model_dir(path):
        return path, ""
    if path.is_file():  # a .keras file or a card .json: let the predictor resolve it
        return path, ""
    if origin:
        return None, f"No model found at {path} (given by {origin}): check the path."
    return None, (
        f"No emotion model yet: the shipped model {model_label(DEFAULT_MODEL_DIR)} is not there. "
        f"Train it, choose another model in ⚙️ Settings, or start the dashboard with "
        f"{MODEL_ENV}=/path/to/model_dir."
    )


@functools.lru_cache(maxsize=1)
def sample_image_bytes() -> bytes:
    """The public-domain portrait of Grace Hopper that ships inside matplotlib (read from the package
    once)."""
    # found without importing matplotlib (tens of MB in every viewer's kernel)
    package = Path(importlib.util.find_spec("matplotlib").origin).parent
    return (package / "mpl-data" / "sample_data" / SAMPLE_NAME).read_bytes()


def default_predictor_factory(api_url: str | None = None, **settings):
    """``RemotePredictor(api_url, **settings)`` when an API URL is given, else
    ``EmotionPredictor(**settings)`` in this kernel (imported on first use: it brings in Keras)."""
    if api_url:
        return RemotePredictor(api_url, **settings)
    from emolib.predict import EmotionPredictor

    return EmotionPredictor(**settings)


def default_reader(data) -> np.ndarray:
    """Decode bytes/path/PIL/array into an RGB uint8 array with emolib's safe reader."""
    from emolib.imageio import load_image

    return load_image(data)


# ---------------------------------------------------------------------------------------------------
# The dashboard
# ---------------------------------------------------------------------------------------------------

def _button(description: str, style: str = "", tooltip: str = "", css: str = "") -> widgets.Button:
    button = widgets.Button(description=description, button_style=style, tooltip=tooltip or description,
                            layout=widgets.Layout(width="auto", min_width="150px", height="40px"))
    if css:
        button.add_class(css)
    return button


def _show(widget: widgets.Widget, visible: bool) -> None:
    widget.layout.display = "" if visible else "none"


class EmotionDashboard(widgets.VBox):
    """Camera / file / sample input → faces, emotions and probabilities.

    Parameters
    ----------
    model : path, optional
        Model directory (or ``.keras`` / card file) to start with; default ``$EMOLIB_MODEL``, else the
        shipped model. Without any, the page says so instead of failing.
    detector : {None, "auto", "yunet", "haar"}
        Face detector (None or "auto": the predictor's default).
    flip_tta : bool
        Average the prediction with the mirrored face.
    language : str
        Language of emotion names ("fr" as in the original).
    api_url : str, optional
        Base URL of a running ``emolib serve`` that answers the predictions; default ``$EMOLIB_API_URL``;
        when neither is set the model runs in this kernel.
    predictor_factory : callable, optional
        ``factory(model=, detector=, flip_tta=, language=)`` → object with ``predict(image,
        whole_image=)``; default :func:`default_predictor_factory` (with ``api_url``). Tests pass a fake.
    reader : callable, optional
        Bytes → RGB uint8 array, raising ValueError on bad input; default ``emolib.imageio.load_image``.
    preload : bool
        Load the model (or reach the API) and analyse the sample in a background thread at once,
        and again after a settings change (see :meth:`preload`).
    model_dirs : iterable of paths, optional
        Where the settings panel looks for model cards (default: :func:`emolib.modelcards.model_search_dirs`).
    """

    def __init__(self, model=None, detector: str | None = None, flip_tta: bool = False,
                 language: str = "fr", api_url: str | None = None, predictor_factory: Callable | None = None,
                 reader: Callable | None = None, preload: bool = False,
                 model_dirs: Iterable[str | os.PathLike] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.add_class("emolib-dashboard")
        self.language = language
        self.api_url = api_url or os.environ.get(API_URL_ENV) or None
        self._factory = predictor_factory or (
            lambda **settings: default_predictor_factory(self.api_url, **settings))
        self._read = reader or default_reader
        self._lock = threading.RLock()
        self._predictor = None
        self._predictor_key = None
        self._preload = preload
        self._sample_ready = None  # (settings key, decoded sample, its result), made by preload()
        self.mode = "file"  # the input mode that Continue returns to
        self.stage = "choose"
        self._crop_scale = 1.0

        start_model, self._model_problem = resolve_start_model(model)
        model_dirs = model_search_dirs() if model_dirs is None else model_dirs
        self._build(start_model, detector, flip_tta, model_dirs)
        self.set_stage("choose")
        self._show_model_state()
        if preload and start_model is not None:
            self.preload()

    # -- layout --------------------------------------------------------------------------------------

    def _build(self, start_model, detector, flip_tta, model_dirs) -> None:
        self.notice = widgets.HTML()
        self.notice.add_class("emolib-notice")

        # settings
        options = [(model_label(d), str(d)) for d in find_models(model_dirs)]
        if start_model is not None and str(start_model) not in [value for _, value in options]:
            options.insert(0, (model_label(start_model), str(start_model)))
        if start_model is None:
            options.insert(0, ("— no model —", ""))
        self.model_select = widgets.Dropdown(
            options=options, value=str(start_model) if start_model is not None else "",
            description="Model", layout=widgets.Layout(width="min(100%, 640px)"),
            style={"description_width": "80px"})
        self.detector_select = widgets.Dropdown(
            options=list(DETECTORS), value=detector or "auto", description="Detector",
            style={"description_width": "80px"})
        self.flip_check = widgets.Checkbox(
            value=flip_tta, description="Flip TTA (average with the mirror image)", indent=False)
        self.model_info = widgets.HTML(model_card_html(start_model, self.language))
        for control in (self.model_select, self.detector_select, self.flip_check):
            control.observe(self._on_settings, names="value")
        self.settings = widgets.Accordion(children=[widgets.VBox(
            [self.model_select, self.model_info, self.detector_select, self.flip_check])])
        self.settings.set_title(0, "⚙️ Settings")
        self.settings.selected_index = None
        self.settings.add_class("emolib-settings")

        # mode chooser
        self.camera_button = _button("📷 Camera", "primary", "Take a photo with the camera",
                                     "emolib-mode-camera")
        self.file_button = _button("📁 File", "primary", "Upload a JPG, PNG or WEBP photo",
                                   "emolib-mode-file")
        self.sample_button = _button("✨ Try a sample", "", "Analyse Grace Hopper's portrait (public domain)",
                                     "emolib-sample")
        self.live_button = _button("🎥 Live", "primary", "Emotions over the camera video, continuously",
                                   "emolib-mode-live")
        self.camera_button.on_click(lambda _: self._guard(self.set_stage, "camera"))
        self.live_button.on_click(lambda _: self._guard(self.set_stage, "live"))
        self.file_button.on_click(lambda _: self._guard(self.set_stage, "file"))
        self.sample_button.on_click(lambda _: self._guard(self.analyse_sample))
        self.chooser = widgets.VBox([
            widgets.HTML("<b>How do you want to give a photo?</b>"),
            widgets.HBox([self.camera_button, self.live_button, self.file_button, self.sample_button],
                         layout=widgets.Layout(gap="8px", flex_flow="row wrap")),
        ])
        self.chooser.add_class("emolib-chooser")

        # camera (📷 one photo, or 🎥 live: every frame through the same predict call as a photo)
        self.webcam = WebcamWidget(active=False, inline_errors=False)  # errors go to self.message
        self.webcam.on_capture(lambda data: self._guard(self.analyse, data, "the camera photo"))
        self.webcam.on_live_frame(lambda data: self.predict_photo(self._read(data)))
        self.webcam.on_error(lambda message: self._guard(self._camera_error, message))
        self.webcam.observe(self._on_camera_status, names="status")
        self.camera_title = widgets.HTML()
        self.camera_panel = widgets.VBox([self.camera_title, self.webcam,
                                          widgets.HBox([self._back_button()])])
        self.camera_panel.add_class("emolib-camera-panel")

        # file
        self.upload = widgets.FileUpload(accept=ACCEPTED_TYPES, multiple=False,
                                         description="Choose a photo", icon="upload",
                                         layout=widgets.Layout(width="auto", height="40px"))
        self.upload.add_class("emolib-upload")
        self.upload.observe(lambda change: self._guard(self._on_upload, change), names="value")
        self.file_panel = widgets.VBox([
            widgets.HTML("<b>📁 File</b> — a JPG, PNG or WEBP photo with one or more faces "
                         f"(at most {MAX_UPLOAD_BYTES // 2**20} MB)."),
            widgets.HBox([self.upload, self.file_sample_button(), self._back_button()],
                         layout=widgets.Layout(gap="8px", flex_flow="row wrap")),
        ])
        self.file_panel.add_class("emolib-file-panel")

        # messages and results
        self.message = widgets.HTML()
        self.message.add_class("emolib-message")
        self.results = ResultView(language=self.language,
                                  explainer=lambda image, face: self.predictor().explain_face(image, face))

        # after a result
        self.continue_button = _button("↻ Continue", "success", "Another photo, same mode", "emolib-continue")
        self.change_button = _button("⇄ Change mode", "", "Back to the choice of camera or file",
                                     "emolib-change-mode")
        self.crop_button = _button("✂️ Crop by hand", "", "Draw a box around a face and classify just it",
                                   "emolib-crop")
        self.continue_button.on_click(lambda _: self._guard(self.set_stage, self.mode))
        self.change_button.on_click(lambda _: self._guard(self.set_stage, "choose"))
        self.crop_button.on_click(lambda _: self._guard(self.start_crop))
        self.actions = widgets.HBox([self.continue_button, self.change_button, self.crop_button],
                                    layout=widgets.Layout(gap="8px", flex_flow="row wrap", margin="8px 0"))
        self.actions.add_class("emolib-actions")

        # crop by hand (jupyter-bbox-widget, created on first use)
        self.bbox = None
        self.crop_go = _button("🔍 Classify the box", "primary", "Classify the region in the box",
                               "emolib-crop-go")
        self.crop_cancel = _button("Cancel", "", "Back to the result", "emolib-crop-cancel")
        self.crop_go.on_click(lambda _: self._guard(self.classify_crop))
        self.crop_cancel.on_click(lambda _: self._guard(self.set_stage, "result"))
        self.crop_area = widgets.Box(layout=widgets.Layout(max_width="720px"))
        self.crop_panel = widgets.VBox([
            widgets.HTML("<b>✂️ Crop by hand</b> — drag a box around one face, then press "
                         "<b>🔍 Classify the box</b>."),
            self.crop_area,
            widgets.HBox([self.crop_go, self.crop_cancel], layout=widgets.Layout(gap="8px")),
        ])
        self.crop_panel.add_class("emolib-crop-panel")

        self.children = (stylesheet(), self.notice, self.settings, self.chooser, self.camera_panel,
                         self.file_panel, self.message, self.results, self.crop_panel, self.actions)

    def _back_button(self) -> widgets.Button:
        button = _button("⇄ Change mode", "", "Back to the choice of camera or file", "emolib-back")
        button.on_click(lambda _: self._guard(self.set_stage, "choose"))
        return button

    def file_sample_button(self) -> widgets.Button:
        button = _button("✨ Try a sample", "", "Analyse Grace Hopper's portrait (public domain)",
                         "emolib-sample-file")
        button.on_click(lambda _: self._guard(self.analyse_sample))
        return button

    # -- stages --------------------------------------------------------------------------------------

    def set_stage(self, stage: str) -> None:
        """Show one step: ``choose``, ``camera``, ``live``, ``file``, ``result`` or ``crop``."""
        if stage not in ("choose", "camera", "live", "file", "result", "crop"):
            raise ValueError(f"unknown stage {stage!r}")
        self.stage = stage
        if stage in ("camera", "live", "file"):
            self.mode = stage
            self.message.value = ""
            self.results.clear()
        if stage == "choose":
            self.message.value = ""
            self.results.clear()
        _show(self.chooser, stage == "choose")
        _show(self.camera_panel, stage in ("camera", "live"))
        _show(self.file_panel, stage == "file")
        _show(self.results, stage == "result")
        _show(self.actions, stage == "result")
        _show(self.crop_panel, stage == "crop")
        # the camera is on only while its panel is shown
        self.camera_title.value = (LIVE_TITLE if stage == "live" else CAMERA_TITLE)
        self.webcam.live = stage == "live"
        self.webcam.active = stage in ("camera", "live")

    # -- messages ------------------------------------------------------------------------------------

    def show_error(self, text: str) -> None:
        self.message.value = (
            f'<div class="emolib-error" role="alert">⚠️ {html.escape(text)}</div>')

    def show_info(self, text: str, css: str = "") -> None:
        """An information message; ``css`` adds a class (``emolib-busy`` while analysing)."""
        classes = " ".join(filter(None, ("emolib-info", css)))
        self.message.value = f'<div class="{classes}">{html.escape(text)}</div>'

    def _show_model_state(self, state: str = "") -> None:
        if self._model_problem:
            self.notice.value = (
                f'<div class="emolib-no-model">⚠️ {html.escape(self._model_problem)}</div>')
            return
        name = model_label(Path(self.model_select.value)) if self.model_select.value else "?"
        ready = "✅ ready (shared prediction server)" if self.api_url else "✅ ready"
        text = {"loading": "⏳ loading the model…", "ready": ready, "failed": "⚠️ could not be loaded"}
        self.notice.value = (
            f'<div class="emolib-model-state">Model: <code>{html.escape(name)}</code>'
            f'{" — " + text[state] if state else ""}</div>')

    def _guard(self, function: Callable, *args) -> None:
        """Run a callback; any exception becomes a message in the page (and a log line), not a traceback."""
        try:
            function(*args)
        except (ValueError, DashboardError, FileNotFoundError, ConnectionError) as error:
            self.show_error(str(error))
        except Exception as error:  # noqa: BLE001 - the page must never show a traceback
            log.exception("dashboard callback failed")
            self.show_error(f"Unexpected error ({type(error).__name__}): {error}")

    # -- model ---------------------------------------------------------------------------------------

    def _settings_key(self) -> tuple:
        detector = None if self.detector_select.value == "auto" else self.detector_select.value
        return (self.model_select.value, detector, bool(self.flip_check.value))

    def _on_settings(self, change) -> None:
        with self._lock:
            self._predictor = None
            self._predictor_key = None
        self._model_problem = "" if self.model_select.value else self._model_problem
        self.model_info.value = model_card_html(self.model_select.value or None, self.language)
        self._show_model_state()
        if self._preload and self.model_select.value:
            self.preload()

    def predictor(self):
        """The predictor for the current settings (loaded on first use, then kept)."""
        key = self._settings_key()
        with self._lock:
            if self._predictor is not None and self._predictor_key == key:
                return self._predictor
            model, detector, flip = key
            if not model:
                raise DashboardError(self._model_problem or "No model chosen: pick one in ⚙️ Settings.")
            self._show_model_state("loading")
            try:
                predictor = self._factory(model=model, detector=detector, flip_tta=flip,
                                          language=self.language)
            except Exception:
                self._show_model_state("failed")
                raise
            self._predictor, self._predictor_key = predictor, key
            self._show_model_state("ready")
            return predictor

    def preload(self) -> threading.Thread:
        """Load the model (or reach the API) and analyse the sample in a background thread (the page
        stays usable; predictions wait for it), so that ✨ Try a sample only has to show its result.
        In Voilà's preheated kernels this runs before any page is opened."""

        def work():
            try:
                key = self._settings_key()
                image = self._read(sample_image_bytes())
                result = self.predict_photo(image)
                with self._lock:
                    self._sample_ready = (key, image, result)
            except Exception as error:  # noqa: BLE001 - reported in the page
                log.exception("model preload failed")
                self.show_error(f"The model could not be loaded ({type(error).__name__}): {error}")

        thread = threading.Thread(target=work, name="emolib-preload", daemon=True)
        thread.start()
        return thread

    # -- analysis ------------------------------------------------------------------------------------

    def analyse(self, data, source: str = "the photo") -> dict:
        """Decode ``data`` (bytes, path, PIL or array), detect and classify every face, show the result."""
        if isinstance(data, bytes | bytearray | memoryview):
            data = bytes(data)
            if not data:
                raise ValueError(f"{source} is empty.")
            if len(data) > MAX_UPLOAD_BYTES:
                raise ValueError(f"{source} is too large ({len(data) / 2**20:.1f} MB); "
                                 f"the limit is {MAX_UPLOAD_BYTES // 2**20} MB.")
        self.show_info(f"⏳ Analysing {source}…", "emolib-busy")
        try:
            image = self._read(data)
        except ValueError as error:
            raise ValueError(f"Could not read {source}: {error}") from error
        result = self.predict_photo(image)
        self._show_result(image, result, source)
        return result

    def _show_result(self, image: np.ndarray, result: dict, source: str) -> None:
        self.message.value = ""
        self.results.show(image, result, source=source)
        self.set_stage("result")

    def predict_photo(self, image: np.ndarray) -> dict:
        """The result dict of one decoded photo (a file, a camera capture or a live frame)."""
        return self.predictor().predict(image, whole_image=False)

    def analyse_sample(self) -> dict:
        """Analyse the portrait that ships with matplotlib."""
        if self.stage not in ("camera", "file"):
            self.mode = "file"
        source = f"the sample ({SAMPLE_NAME})"
        with self._lock:
            ready = self._sample_ready
        if ready is None or ready[0] != self._settings_key():
            return self.analyse(sample_image_bytes(), source)
        _, image, result = ready
        self._show_result(image, result, source)
        return result

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        name = item.get("name", "the file")
        try:
            content = item["content"]
            size = item.get("size") or len(content)
            if size > MAX_UPLOAD_BYTES:
                raise ValueError(f"{name} is too large ({size / 2**20:.1f} MB); "
                                 f"the limit is {MAX_UPLOAD_BYTES // 2**20} MB.")
            self.analyse(bytes(content), name)
        finally:
            self._clear_upload()

    def _clear_upload(self) -> None:
        # so that choosing the same file again fires a new change
        try:
            self.upload.value = ()
        except Exception:  # noqa: BLE001 - older ipywidgets refuse; only re-upload detection suffers
            log.debug("could not clear the FileUpload value", exc_info=True)

    def _on_camera_status(self, change) -> None:
        # the camera works again (Retry): the old camera error no longer applies
        in_camera = self.stage in ("camera", "live")
        if change["new"] == "live" and in_camera and "emolib-error" in self.message.value:
            self.message.value = ""

    def _camera_error(self, message: str) -> None:
        if self.stage in ("camera", "live"):
            raise DashboardError(message)

    # -- crop by hand --------------------------------------------------------------------------------

    def start_crop(self) -> None:
        """Show the last image in a box-drawing widget."""
        if self.results.image is None:
            raise DashboardError("Analyse a photo first, then crop it by hand.")
        from jupyter_bbox_widget import BBoxWidget

        image = self.results.image
        side = 720
        self._crop_scale = min(1.0, side / max(image.shape[:2]))
        data = encode(image, fmt="jpeg", max_side=side)
        if self.bbox is None:
            self.bbox = BBoxWidget(image_bytes=data, classes=["face"], hide_buttons=True)
            self.bbox.add_class("emolib-bbox")
            self.bbox.on_submit(lambda: self._guard(self.classify_crop))
            self.crop_area.children = (self.bbox,)
        else:
            self.bbox.image_bytes = data
        self.bbox.bboxes = []
        self.message.value = ""
        self.set_stage("crop")

    def crop_box_from_widget(self) -> dict:
        """The last drawn box, in pixels of the analysed image."""
        if self.bbox is None or not self.bbox.bboxes:
            raise DashboardError("Draw a box around a face first (drag on the image).")
        drawn = self.bbox.bboxes[-1]
        scale = self._crop_scale or 1.0
        return {key: int(round(drawn[src] / scale)) for key, src in
                (("x", "x"), ("y", "y"), ("w", "width"), ("h", "height"))}

    def classify_crop(self, box: dict | None = None) -> dict:
        """Classify the region ``box`` (default: the drawn box) as one face, and show it on the image."""
        image = self.results.image
        if image is None:
            raise DashboardError("Analyse a photo first, then crop it by hand.")
        box = box or self.crop_box_from_widget()
        region = crop_box(image, box)
        if min(region.shape[:2]) < 8:
            raise ValueError("The box is too small: draw it around the whole face.")
        self.show_info("⏳ Analysing the box…", "emolib-busy")
        result = self.predictor().predict(region, whole_image=True)
        x0 = max(0, box["x"])
        y0 = max(0, box["y"])
        for prediction in result.get("predictions", []):
            inner = prediction.get("box") or {"x": 0, "y": 0, "w": region.shape[1], "h": region.shape[0]}
            prediction["box"] = {"x": x0 + int(inner["x"]), "y": y0 + int(inner["y"]),
                                 "w": int(inner["w"]), "h": int(inner["h"])}
        result = {**result, "detector": "manual box"}
        self.message.value = ""
        self.results.show(image, result, source="the box drawn by hand")
        self.set_stage("result")
        return result

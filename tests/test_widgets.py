"""The dashboard's widgets and callbacks, driven from Python with a fake predictor (no browser, no TF)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emolib import labels
from emolib.widgets import app as dash_app
from emolib.widgets import results
from emolib.widgets.app import EmotionDashboard, find_models, resolve_start_model
from emolib.widgets.webcam import WebcamWidget


def _jpeg(width=320, height=240, color=(200, 150, 120)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def _prediction(emotion="happy", confidence=87.5, box=None):
    probabilities = {name: 0.0 for name in labels.EMOTIONS_7}
    probabilities[emotion] = confidence / 100
    probabilities["neutral" if emotion != "neutral" else "sad"] = 1 - confidence / 100
    return {"emotion": emotion, "label": labels.display_name(emotion, "fr"), "emoji": labels.emoji(emotion),
            "confidence": confidence, "box": box or {"x": 10, "y": 20, "w": 50, "h": 60},
            "probabilities": probabilities}


class FakePredictor:
    """Stands in for EmotionPredictor: one face (or none) and a record of every call."""

    def __init__(self, faces=1, **settings):
        self.settings = settings
        self.faces = faces
        self.calls = []

    def predict(self, image, whole_image=False):
        image = np.asarray(image)
        self.calls.append({"shape": image.shape, "whole_image": whole_image})
        h, w = image.shape[:2]
        if whole_image:
            predictions = [_prediction("surprise", 61.0, {"x": 0, "y": 0, "w": w, "h": h})]
        else:
            predictions = [_prediction(box={"x": w // 4, "y": h // 4, "w": w // 2, "h": h // 2})] * self.faces
        return {"faces_detected": len(predictions), "detector": "fake", "predictions": predictions}


class Factory:
    def __init__(self, faces=1, error: Exception | None = None):
        self.faces, self.error, self.made = faces, error, []

    def __call__(self, **settings):
        if self.error:
            raise self.error
        predictor = FakePredictor(self.faces, **settings)
        self.made.append(predictor)
        return predictor


def _read(data):
    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception as error:
        raise ValueError(f"not a readable image ({len(data)} bytes)") from error


@pytest.fixture
def model_dir(tmp_path):
    """A directory that looks like a saved model (card + file) to the dashboard's model search."""
    directory = tmp_path / "models" / "fake"
    directory.mkdir(parents=True)
    (directory / "model.keras").write_bytes(b"not really a model")
    card = {"name": "fake-model", "labels": list(labels.EMOTIONS_7)}
    (directory / "model.json").write_text(json.dumps(card))
    return directory


@pytest.fixture
def make_dashboard(model_dir, monkeypatch):
    monkeypatch.delenv("EMOLIB_MODEL", raising=False)

    def make(faces=1, error=None, model=model_dir, **kwargs):
        factory = Factory(faces, error)
        dashboard = EmotionDashboard(model=model, predictor_factory=factory, reader=_read,
                                     model_dirs=[model_dir.parent], **kwargs)
        return dashboard, factory

    return make


def _upload(dashboard, content: bytes, name="photo.jpg"):
    dashboard.set_stage("file")
    dashboard.upload.set_state({"value": [{"name": name, "type": "image/jpeg", "size": len(content),
                                           "content": memoryview(content), "last_modified": 0}]})


def _html(widget) -> str:
    """All HTML text in a widget tree."""
    parts = [getattr(widget, "value", "") if isinstance(getattr(widget, "value", None), str) else ""]
    for child in getattr(widget, "children", ()):
        parts.append(_html(child))
    return "\n".join(parts)


def test_an_uncertain_face_gets_a_grey_card_that_says_not_sure():
    sure = results.face_card({**_prediction(), "uncertain": False}, 0)
    unsure = results.face_card({**_prediction(confidence=40.0), "uncertain": True}, 0)
    assert "not sure" in _html(unsure) and "not sure" not in _html(sure)
    assert "emolib-face-card-uncertain" in unsure._dom_classes
    assert "emolib-face-card-uncertain" not in sure._dom_classes
    assert results.UNCERTAIN_COLOR in unsure.layout.border and results.color_for(0) in sure.layout.border


def test_default_model_dir_is_the_shipped_one():
    from emolib import models

    assert dash_app.DEFAULT_MODEL_DIR == models.DEFAULT_MODEL_DIR


def test_upload_shows_faces_cards_and_annotated_image(make_dashboard):
    dashboard, factory = make_dashboard()
    _upload(dashboard, _jpeg())
    text = _html(dashboard.results)
    assert dashboard.stage == "result"
    assert "Faces detected: 1" in text
    assert "Joie" in text and "😄" in text and "87.5 %" in text
    cards = [c for c in dashboard.results.children if "emolib-face-card" in c._dom_classes]
    assert len(cards) == 1
    annotated = [c for c in dashboard.results.children if "emolib-annotated" in c._dom_classes]
    assert annotated and Image.open(io.BytesIO(annotated[0].value)).size == (320, 240)
    assert factory.made[0].calls == [{"shape": (240, 320, 3), "whole_image": False}]
    assert dashboard.actions.layout.display == "" and dashboard.file_panel.layout.display == "none"
    assert dashboard.upload.value == ()  # cleared, so the same file can be chosen again


def test_non_image_upload_gives_a_message_not_a_traceback(make_dashboard):
    dashboard, factory = make_dashboard()
    _upload(dashboard, b"%PDF-1.4 definitely not a photo", name="notes.pdf")
    assert "emolib-error" in dashboard.message.value
    assert "notes.pdf" in dashboard.message.value and "not a readable image" in dashboard.message.value
    assert dashboard.stage == "file"
    assert dashboard.results.children == ()
    assert not factory.made  # never got as far as the model


def test_huge_upload_is_refused_before_decoding(make_dashboard, monkeypatch):
    monkeypatch.setattr(dash_app, "MAX_UPLOAD_BYTES", 1000)
    dashboard, _ = make_dashboard()
    _upload(dashboard, _jpeg(800, 600, (10, 20, 30)) + b"\0" * 2000, name="big.jpg")
    assert "too large" in dashboard.message.value and "big.jpg" in dashboard.message.value


def test_no_face_is_a_friendly_message_with_crop_by_hand(make_dashboard):
    dashboard, _ = make_dashboard(faces=0)
    _upload(dashboard, _jpeg())
    text = _html(dashboard.results)
    assert "Faces detected: 0" in text and "emolib-no-face" in text and "Crop by hand" in text
    assert dashboard.crop_button.layout.display != "none"


def test_camera_capture_bytes_arrive_as_bytes_and_are_analysed(make_dashboard):
    dashboard, factory = make_dashboard()
    dashboard.set_stage("camera")
    assert dashboard.webcam.active is True
    # what the browser sends: a binary buffer (memoryview) for the Bytes trait, and a new capture id
    dashboard.webcam.set_state({"frame": memoryview(_jpeg(640, 480)), "capture_id": 1})
    assert isinstance(dashboard.webcam.frame, bytes)
    assert dashboard.stage == "result"
    assert factory.made[0].calls[0]["shape"] == (480, 640, 3)
    assert dashboard.webcam.active is False  # camera given back while the result shows
    dashboard.continue_button.click()
    assert dashboard.stage == "camera" and dashboard.webcam.active is True
    dashboard.change_button.click()
    assert dashboard.stage == "choose" and dashboard.webcam.active is False
    assert dashboard.chooser.layout.display == ""


def test_same_frame_twice_is_analysed_twice(make_dashboard):
    dashboard, factory = make_dashboard()
    frame = _jpeg()
    for capture_id in (1, 2):
        dashboard.set_stage("camera")
        dashboard.webcam.set_state({"frame": memoryview(frame), "capture_id": capture_id})
    assert len(factory.made[0].calls) == 2


def test_camera_error_is_shown_in_the_page(make_dashboard):
    dashboard, _ = make_dashboard()
    dashboard.set_stage("camera")
    dashboard.webcam.set_state({"status": "error", "error": "No camera found: plug in a camera."})
    assert "emolib-error" in dashboard.message.value and "No camera found" in dashboard.message.value
    dashboard.webcam.set_state({"status": "live", "error": ""})  # Retry worked
    assert dashboard.message.value == ""


def test_webcam_traits_default_to_off_in_the_dashboard(make_dashboard):
    dashboard, _ = make_dashboard()
    assert dashboard.stage == "choose" and dashboard.webcam.active is False
    widget = WebcamWidget()
    assert widget.frame == b"" and widget.capture_id == 0
    widget.stop()
    assert widget.active is False


def test_mode_buttons_switch_panels(make_dashboard):
    dashboard, _ = make_dashboard()
    dashboard.file_button.click()
    assert dashboard.stage == "file" and dashboard.file_panel.layout.display == ""
    assert dashboard.camera_panel.layout.display == "none" and dashboard.chooser.layout.display == "none"
    dashboard.change_button.click()
    dashboard.camera_button.click()
    assert dashboard.stage == "camera" and dashboard.camera_panel.layout.display == ""


def test_sample_is_grace_hopper_from_matplotlib(make_dashboard):
    import matplotlib
    from matplotlib import cbook

    path = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    assert Path(matplotlib.__file__).parent in path.parents  # read from the package, not a copy
    assert dash_app.sample_image_bytes() == path.read_bytes()
    dashboard, factory = make_dashboard()
    dashboard.sample_button.click()
    assert dashboard.stage == "result" and dashboard.mode == "file"
    assert factory.made[0].calls[0]["shape"] == (600, 512, 3)
    assert "grace_hopper.jpg" in _html(dashboard.results)


def test_preload_analyses_the_sample_ahead_for_its_settings_only(make_dashboard):
    dashboard, factory = make_dashboard()
    dashboard.preload().join(timeout=60)
    assert [len(p.calls) for p in factory.made] == [1]  # the sample, before any click
    dashboard.sample_button.click()
    assert [len(p.calls) for p in factory.made] == [1]  # the click shows the result made ahead
    assert dashboard.stage == "result" and "grace_hopper.jpg" in _html(dashboard.results)
    assert dashboard.results.result["faces_detected"] == 1
    dashboard.flip_check.value = True  # other settings: the sample is analysed again, with them
    dashboard.sample_button.click()
    assert [len(p.calls) for p in factory.made] == [1, 1] and factory.made[1].settings["flip_tta"] is True


def test_crop_by_hand_classifies_the_region_and_maps_the_box_back(make_dashboard):
    dashboard, factory = make_dashboard(faces=0)
    _upload(dashboard, _jpeg(1440, 960))
    dashboard.crop_button.click()
    assert dashboard.stage == "crop" and dashboard.bbox is not None
    assert dashboard._crop_scale == pytest.approx(0.5)  # shown at 720 px wide
    dashboard.crop_go.click()
    assert "Draw a box" in dashboard.message.value
    dashboard.bbox.bboxes = [{"x": 100, "y": 50, "width": 200, "height": 150, "label": "face"}]
    dashboard.crop_go.click()
    call = factory.made[0].calls[-1]
    assert call == {"shape": (300, 400, 3), "whole_image": True}
    assert dashboard.stage == "result"
    assert dashboard.results.result["predictions"][0]["box"] == {"x": 200, "y": 100, "w": 400, "h": 300}
    assert "Surprise" in _html(dashboard.results)


def test_no_model_shows_a_message_and_never_raises(make_dashboard, tmp_path, monkeypatch):
    monkeypatch.setattr(dash_app, "DEFAULT_MODEL_DIR", tmp_path / "absent")
    factory = Factory()
    dashboard = EmotionDashboard(predictor_factory=factory, reader=_read, model_dirs=[tmp_path / "none"])
    assert "emolib-no-model" in dashboard.notice.value and "EMOLIB_MODEL" in dashboard.notice.value
    dashboard.sample_button.click()
    assert "emolib-error" in dashboard.message.value and "No emotion model" in dashboard.message.value
    assert not factory.made


def test_env_var_names_the_model(model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("EMOLIB_MODEL", str(model_dir))
    assert resolve_start_model() == (model_dir, "")
    monkeypatch.setenv("EMOLIB_MODEL", str(tmp_path / "typo"))
    path, problem = resolve_start_model()
    assert path is None and "EMOLIB_MODEL" in problem and "typo" in problem


def test_model_failure_is_a_message(make_dashboard):
    dashboard, _ = make_dashboard(error=RuntimeError("broken weights"))
    _upload(dashboard, _jpeg())
    assert "emolib-error" in dashboard.message.value and "broken weights" in dashboard.message.value
    assert "could not be loaded" in dashboard.notice.value


def test_settings_change_reloads_with_the_new_detector(make_dashboard):
    dashboard, factory = make_dashboard()
    dashboard.sample_button.click()
    dashboard.detector_select.value = "haar"
    dashboard.flip_check.value = True
    dashboard.change_button.click()
    dashboard.sample_button.click()
    assert [p.settings["detector"] for p in factory.made] == [None, "haar"]
    assert factory.made[-1].settings["flip_tta"] is True and factory.made[-1].settings["language"] == "fr"
    assert dashboard.settings.selected_index is None  # collapsed by default
    assert dashboard.detector_select.label == "Haar cascade"


def test_settings_show_the_current_choices(make_dashboard, model_dir):
    dashboard, _ = make_dashboard()
    assert dashboard.detector_select.label == "automatic"
    assert dashboard.model_select.value == str(model_dir) and "fake-model" in dashboard.model_select.label


def test_find_models_needs_card_and_model_file(model_dir, tmp_path):
    half = model_dir.parent / "half-written"
    half.mkdir()
    (half / "model.json").write_text("{}")
    assert find_models([model_dir.parent, tmp_path / "missing"]) == [model_dir]


def test_annotate_draws_a_box_and_bars_are_french():
    image = np.full((200, 300, 3), 255, np.uint8)
    result = {"faces_detected": 1, "predictions": [_prediction(box={"x": 100, "y": 60, "w": 80, "h": 80})]}
    out = np.asarray(results.annotate(image, result))
    assert out.shape == (200, 300, 3)
    assert (out[100, 100] != 255).any()  # left edge of the box is coloured
    assert (out[100, 140] == 255).all()  # inside the box untouched
    bars = results.probability_bars_html(result["predictions"][0]["probabilities"])
    assert bars.index("Joie") < bars.index("Neutre") < bars.index("Colère")  # sorted by probability
    assert "87.5 %" in bars and "12.5 %" in bars


def test_live_frames_go_through_the_photo_predict_call_and_answer_the_browser(make_dashboard, monkeypatch):
    dashboard, factory = make_dashboard()
    sent = []
    monkeypatch.setattr(dashboard.webcam, "send", sent.append)
    dashboard.live_button.click()
    assert dashboard.stage == "live" and dashboard.webcam.active and dashboard.webcam.live
    assert dashboard.camera_panel.layout.display == "" and dashboard.chooser.layout.display == "none"
    assert "🎥 Live" in dashboard.camera_title.value
    # the browser's message: {type: live-frame, id} with the JPEG as a binary buffer (a memoryview)
    dashboard.webcam._on_message(dashboard.webcam, {"type": "live-frame", "id": 7}, [memoryview(_jpeg())])
    assert sent == [{"type": "live-result", "id": 7, "error": "", "faces": [
        {"box": {"x": 80, "y": 60, "w": 160, "h": 120}, "emotion": "happy", "label": "Joie", "emoji": "😄",
         "confidence": 87.5, "uncertain": False}]}]
    assert factory.made[0].calls == [{"shape": (240, 320, 3), "whole_image": False}]
    assert dashboard.stage == "live"  # live mode stays on its panel, no result stage
    # a broken frame is answered with its error, and the loop can go on
    dashboard.webcam._on_message(dashboard.webcam, {"type": "live-frame", "id": 8}, [b"garbage"])
    assert sent[-1]["id"] == 8 and "not a readable image" in sent[-1]["error"] and sent[-1]["faces"] == []
    dashboard.set_stage("choose")
    assert dashboard.webcam.active is False and dashboard.webcam.live is False  # the camera is given back
    dashboard.set_stage("camera")  # 📷 Camera: the same widget, capturing one photo again
    assert dashboard.webcam.active and not dashboard.webcam.live
    assert "📷 Camera" in dashboard.camera_title.value


def test_live_camera_error_is_shown_in_the_page(make_dashboard):
    dashboard, _ = make_dashboard()
    dashboard.set_stage("live")
    dashboard.webcam.set_state({"status": "error", "error": "No camera found: plug in a camera."})
    assert "emolib-error" in dashboard.message.value and "No camera found" in dashboard.message.value


def test_settings_list_the_shipped_models_with_classes_and_scores(monkeypatch):
    from emolib import modelcards

    monkeypatch.delenv("EMOLIB_MODEL", raising=False)
    shipped = modelcards.list_models()
    assert {"emolib-fer2013", "emolib-ferplus"} <= set(shipped)
    dashboard = EmotionDashboard(predictor_factory=Factory(), reader=_read,
                                 model_dirs=[modelcards.SHIPPED_MODELS_DIR])
    labels = dict((value, label) for label, value in dashboard.model_select.options)
    for name in ("emolib-fer2013", "emolib-ferplus"):
        label = labels[shipped[name]["path"]]
        accuracy = 100 * shipped[name]["metrics"]["test"]["accuracy"]
        assert label.startswith(f"emolib/shipped_models/{name}")
        assert f"{len(shipped[name]['labels'])} classes" in label
        assert f"test accuracy {accuracy:.1f} %" in label
    dashboard.model_select.value = shipped["emolib-ferplus"]["path"]
    assert "8 classes" in dashboard.model_info.value and "Mépris 😒" in dashboard.model_info.value
    dashboard.model_select.value = shipped["emolib-fer2013"]["path"]
    assert "7 classes" in dashboard.model_info.value and "Mépris" not in dashboard.model_info.value
    dashboard.sample_button.click()
    assert dashboard._factory.made[-1].settings["model"] == shipped["emolib-fer2013"]["path"]


def test_looks_come_from_the_stylesheet_which_styles_every_class_the_html_uses(make_dashboard):
    import re

    dashboard, _ = make_dashboard()
    _upload(dashboard, _jpeg())
    dashboard.show_error("broken")
    page = _html(dashboard)
    rules = results.STYLESHEET.read_text(encoding="utf-8")
    assert page.count("<style>") == 2, "the dashboard's own stylesheet and the result view's"
    body = page.replace(f"<style>{rules}</style>", "")
    used = set(re.findall(r"emolib-[a-z-]+", " ".join(re.findall(r'class="([^"]+)"', body))))
    styled = set(re.findall(r"\.(emolib-[a-z-]+)", rules))
    assert {"emolib-error", "emolib-bar-fill", "emolib-face-emoji"} <= used
    assert used - styled <= {"emolib-face-label", "emolib-face-confidence"}, used - styled
    # inline styles only for what the data decides: a bar's length and the face's colour
    assert set(re.findall(r'style="([a-z-]+):', body)) == {"width"}

"""Saliency maps: shape, determinism, the deletion check on FER2013 faces, predict / CLI / dashboard paths."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emolib import explain as E

REPO = Path(__file__).resolve().parents[1]
#: Test faces in the small deletion check (the bench runs >= 200).
DELETION_FACES = 32


@pytest.fixture(scope="module")
def predictor(yunet_path):
    from emolib import detect
    from emolib.predict import EmotionPredictor

    return EmotionPredictor("emolib-fer2013", detect.get_detector("yunet", model_path=yunet_path))


@pytest.fixture(scope="module")
def fer_test_faces(fer2013_dir):
    from emolib import data

    test = data.load_split("fer2013", fer2013_dir, "test", 48, 1)
    index = np.random.default_rng(0).choice(len(test), DELETION_FACES, replace=False)
    return test.images[index]


def _png(data: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def test_maps_have_the_crop_shape_and_are_deterministic(predictor, fer_test_faces):
    crops = fer_test_faces[:3]
    first = E.occlusion_maps(predictor.classify, crops)
    again = E.occlusion_maps(predictor.classify, crops, variants_per_call=50)  # other batching, same maps
    assert first.shape == (3, 48, 48) and first.dtype == np.float32
    np.testing.assert_allclose(first, again, atol=1e-5)
    assert np.all(np.abs(first).max(axis=(1, 2)) > 1e-3)  # a trained model reacts to occlusion somewhere
    assert np.all(first.std(axis=(1, 2)) > 0)  # and not uniformly


def test_occlusion_of_a_known_function_finds_the_region():
    """A 'model' that only looks at the top-left corner: the map is non-zero there and nowhere else."""

    def classify(crops):
        corner = crops[:, :8, :8, 0].mean(axis=(1, 2)) / 255.0
        return np.stack([corner, 1 - corner], axis=1)

    crops = np.zeros((1, 32, 32, 1), dtype=np.uint8)
    crops[0, :8, :8] = 255  # bright corner: class 0; hiding it (mean fill) lowers class 0
    saliency = E.occlusion_maps(classify, crops, [0])[0]
    assert saliency[:4, :4].min() > 0
    assert np.abs(saliency[16:, 16:]).max() == 0
    assert E.normalize(saliency).max() == pytest.approx(1.0)


def test_bad_crops_and_targets_are_value_errors(predictor):
    with pytest.raises(ValueError, match="crops must be"):
        E.occlusion_maps(predictor.classify, np.zeros((48, 48, 1)))
    with pytest.raises(ValueError, match="class indices"):
        E.occlusion_maps(predictor.classify, np.zeros((1, 48, 48, 1)), [9])
    assert E.occlusion_maps(predictor.classify, np.zeros((0, 48, 48, 1))).shape == (0, 48, 48)


def test_deletion_salient_pixels_matter_more_than_random_ones(predictor, fer_test_faces):
    targets = np.argmax(predictor.classify(fer_test_faces), axis=1)
    maps = E.occlusion_maps(predictor.classify, fer_test_faces, targets)
    check = E.deletion_check(predictor.classify, fer_test_faces, maps, targets, fraction=0.1)
    assert check["faces"] == DELETION_FACES
    assert check["salient_drop"] > check["random_drop"] > -0.05, check
    assert check["salient_wins"] > 0.5, check


def test_predict_with_explain_adds_a_saliency_png_per_face(predictor, photos_dir):
    photo = photos_dir / "grace_hopper.jpg"
    plain = predictor.predict(photo)
    explained = predictor.predict(photo, explain=True)
    assert plain["faces_detected"] == explained["faces_detected"] == 1
    assert "saliency" not in plain["predictions"][0]
    face = explained["predictions"][0]
    assert {k: v for k, v in face.items() if k != "saliency"} == plain["predictions"][0]
    picture = _png(face["saliency"]["png"])
    assert list(picture.shape[:2]) == face["saliency"]["size"] == [E.OVERLAY_SIDE, E.OVERLAY_SIDE]
    # the toggle's path: one face of a result explained again gives the same overlay
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    assert predictor.explain_face(rgb, face)["png"] == face["saliency"]["png"]


def test_explain_without_face_and_with_bad_input(predictor):
    blank = np.full((120, 160, 3), 200, dtype=np.uint8)
    explanation = predictor.explain(blank)
    assert explanation.result["predictions"] == [] and explanation.maps.shape == (0, 48, 48)
    assert np.array_equal(explanation.overlay_image(), blank)
    with pytest.raises(ValueError):
        predictor.predict(b"not an image at all", explain=True)
    with pytest.raises(ValueError):
        predictor.predict(b"", explain=True)


def test_cli_predict_explain_writes_an_overlay_png(tmp_path, photos_dir):
    out = tmp_path / "maps"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    command = [sys.executable, "-m", "emolib", "predict", str(photos_dir / "grace_hopper.jpg"), str(broken),
               "--model", "emolib-fer2013", "--detector", "yunet", "--explain", str(out), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 1, done.stderr  # one image failed, said so, the other was written
    assert "broken.jpg" in done.stderr
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["faces_detected"] == 1 and "saliency" not in line["predictions"][0]
    written = Path(line["explanation"])
    assert written == out / "grace_hopper.png"
    original = np.asarray(Image.open(photos_dir / "grace_hopper.jpg").convert("RGB"))
    overlay = np.asarray(Image.open(written).convert("RGB"))
    assert overlay.shape == original.shape
    box = line["predictions"][0]["box"]
    inside = (slice(box["y"], box["y"] + box["h"]), slice(box["x"], box["x"] + box["w"]))
    assert np.abs(overlay[inside].astype(int) - original[inside]).mean() > 10  # the face is tinted
    assert np.abs(overlay[:20, :20].astype(int) - original[:20, :20]).max() == 0  # the corner is not


def test_cli_explain_with_out_is_a_clear_error(tmp_path, capsys):
    from emolib.commands import main

    assert main(["predict", "photo.jpg", "--out", str(tmp_path / "p.jsonl"), "--explain", str(tmp_path)]) == 2
    assert "--explain writes an overlay per image" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()


def test_dashboard_why_toggle_shows_the_saliency(predictor, photos_dir):
    from emolib.widgets.results import ResultView

    image = np.asarray(Image.open(photos_dir / "grace_hopper.jpg").convert("RGB"))
    result = predictor.predict(image)
    calls = []

    def explainer(img, face):
        calls.append(face["emotion"])
        return predictor.explain_face(img, face)

    view = ResultView(explainer=explainer)
    view.show(image, result)
    cards = [c for c in view.children if "emolib-face-card" in c._dom_classes]
    toggle_box = cards[0].children[1]
    button, picture, note = toggle_box.children
    assert button.description == "🔍 Why?" and picture.layout.display == "none" and not calls
    button.value = True
    assert calls == [result["predictions"][0]["emotion"]]
    assert picture.layout.display is None
    assert Image.open(io.BytesIO(picture.value)).size == (E.OVERLAY_SIDE, E.OVERLAY_SIDE)
    button.value = False
    assert picture.layout.display == "none"
    button.value = True  # kept: not computed twice
    assert len(calls) == 1 and picture.layout.display is None
    # without an explainer (and no saliency in the result) there is no toggle
    plain = ResultView()
    plain.show(image, result)
    card = [c for c in plain.children if "emolib-face-card" in c._dom_classes][0]
    assert not any("emolib-why" in getattr(w, "_dom_classes", ()) for w in card.children)

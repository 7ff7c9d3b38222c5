"""AffectNet (both releases) and ExpW on fixtures in their real layouts, made from shared FER+ faces
pasted into larger photos at known boxes, with made-up valence / arousal; the crop geometry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from emolib import boxes as B
from emolib import data as D
from emolib.crops import expand_box

PHOTO = (120, 160)  # height, width of the generated photos
CSV_HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,"
              "valence,arousal")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("EMOLIB_CACHE", str(directory))
    return directory


@pytest.fixture(scope="module")
def ferplus_faces(ferplus_dir):
    files = sorted((ferplus_dir / "FER2013Test").glob("*.png"))[:12]
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in files]


def paste(face: np.ndarray, box, seed: int) -> np.ndarray:
    """A noisy gray photo with ``face`` resized into ``box`` (x, y, w, h)."""
    photo = np.random.default_rng(seed).integers(0, 256, PHOTO, dtype=np.uint8)
    x, y, w, h = box
    photo[y:y + h, x:x + w] = cv2.resize(face, (w, h), interpolation=cv2.INTER_LINEAR)
    return photo


def landmarks(box) -> str:
    """68 made-up points whose eyes sit level across the upper third of ``box``."""
    x, y, w, h = box
    points = np.tile([x + w / 2, y + h / 2], (68, 1))
    points[36:42] = [x + 0.3 * w, y + 0.35 * h]
    points[42:48] = [x + 0.7 * w, y + 0.35 * h]
    return ";".join(f"{v:.1f}" for v in points.ravel())


def make_affectnet_csv(root, faces):
    """training.csv: 8 faces of codes 0-7, codes 8/9/10 (dropped), an out-of-image box, an empty box and
    an unreadable photo (skipped); validation.csv: two faces, one without valence / arousal (-2)."""
    images = root / "Manually_Annotated_Images" / "1"
    images.mkdir(parents=True)
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir()
    rows = {"training.csv": [], "validation.csv": []}
    box = (40, 20, 64, 64)
    for i, code in enumerate([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3]):
        cv2.imwrite(str(images / f"{i}.jpg"), paste(faces[i % len(faces)], box, i))
        face_box = {11: (500, 500, 40, 40), 12: (40, 20, 0, 64)}.get(i, box)
        rows["training.csv"].append(f"1/{i}.jpg,{','.join(map(str, face_box))},{landmarks(box)},{code},"
                                    f"{(i - 7) / 10},{i / 20}")
    (images / "13.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    for i, (code, va) in enumerate([(1, "0.5,0.25"), (7, "-2,-2")], start=20):
        cv2.imwrite(str(images / f"{i}.jpg"), paste(faces[i % len(faces)], box, i))
        rows["validation.csv"].append(f"1/{i}.jpg,{','.join(map(str, box))},{landmarks(box)},{code},{va}")
    for name, lines in rows.items():
        (lists / name).write_text("\n".join([CSV_HEADER, *lines]) + "\n")
    return root


def test_affectnet_csv_counts_dropped_codes_skipped_boxes_and_va(tmp_path, cache_dir, ferplus_faces):
    root = make_affectnet_csv(tmp_path / "affectnet", ferplus_faces)
    train = D.load_split("affectnet", root, "train", 48, 1)
    assert train.dropped == 3  # codes 8, 9, 10
    assert sorted(os.path.basename(s) for s in train.skipped) == ["11.jpg", "12.jpg", "13.jpg"]
    assert D.class_counts(train.labels, train.classes) == {
        "angry": 1, "disgust": 1, "fear": 1, "happy": 1, "sad": 1, "surprise": 1, "neutral": 1, "contempt": 1}
    assert train.classes[train.labels[0]] == "neutral" and train.classes[train.labels[6]] == "angry"
    assert train.valence_arousal[1].tolist() == pytest.approx([-0.6, 0.05])
    # the crop is the pasted FER+ face (resized 48 → 64 → 48)
    error = np.abs(train.images[0, ..., 0].astype(int) - ferplus_faces[0].astype(int)).mean()
    assert error < 6
    seven = D.load_split("affectnet", root, "train", 48, 1, classes=7)
    assert seven.classes == D.L.EMOTIONS_7 and len(seven) == 7 and seven.dropped == 4
    test = D.load_split("affectnet", root, "test", 48, 1)  # AffectNet's validation set
    assert len(test) == 2 and np.isnan(test.valence_arousal[1]).all()
    assert test.valence_arousal[0].tolist() == [0.5, 0.25]


def test_affectnet_per_image_release(tmp_path, cache_dir, ferplus_faces):
    for folder, codes in (("train_set", [1, 2, 8, 7]), ("val_set", [0])):
        for sub in ("images", "annotations"):
            (tmp_path / folder / sub).mkdir(parents=True)
        for i, code in enumerate(codes):
            face = cv2.resize(ferplus_faces[i], (96, 96))
            cv2.imwrite(str(tmp_path / folder / "images" / f"{i}.jpg"), face)
            notes = tmp_path / folder / "annotations"
            for part, value in (("exp", str(code)), ("val", "0.25"), ("aro", "-0.5")):
                np.save(notes / f"{i}_{part}.npy", np.array(value))  # strings, as the release stores them
            np.save(notes / f"{i}_lnd.npy", np.array(landmarks((0, 0, 96, 96)).split(";")))
    train = D.load_split("affectnet", tmp_path, "train", 48, 1, align=True)
    assert [train.classes[i] for i in train.labels] == ["happy", "sad", "contempt"] and train.dropped == 1
    assert train.valence_arousal.tolist() == [[0.25, -0.5]] * 3
    error = np.abs(train.images[0, ..., 0].astype(int) - ferplus_faces[0].astype(int)).mean()
    assert error < 6  # the whole image is the face; level eyes: no rotation
    assert len(D.load_split("affectnet", tmp_path, "test", 48, 1)) == 1


def test_expw_label_list_faces_and_seeded_split(tmp_path, cache_dir, ferplus_faces):
    (tmp_path / "origin").mkdir()
    lines = []
    for photo in range(10):
        image = paste(ferplus_faces[photo], (10, 10, 50, 50), photo)
        image[60:110, 100:150] = cv2.resize(ferplus_faces[photo + 1], (50, 50))
        cv2.imwrite(str(tmp_path / "origin" / f"p{photo}.png"), image)
        # top left right bottom: two faces per photo
        lines += [f"p{photo}.png 0 10 10 60 60 0.9 {photo % 7}", f"p{photo}.png 1 60 100 150 110 0.8 3"]
    (tmp_path / "label.lst").write_text("\n".join(lines) + "\n")
    train = D.load_split("expw", tmp_path, "train", 48, 1)
    test = D.load_split("expw", tmp_path, "test", 48, 1)
    assert (len(train), len(test)) == (18, 2)
    assert len({B.source_file(s) for s in test.sources}) == 1  # both faces of one photo
    assert not {B.source_file(s) for s in train.sources} & {B.source_file(s) for s in test.sources}
    row = train.sources.index(B.face_source(str(tmp_path / "origin" / "p0.png"), 1))
    assert train.classes[train.labels[row]] == "happy"
    error = np.abs(train.images[row, ..., 0].astype(int) - ferplus_faces[1].astype(int)).mean()
    assert error < 8
    assert D.load_split("expw", tmp_path, "test", 48, 1, seed=1).sources != test.sources


def test_folders_with_a_box_file_crops_listed_images(tmp_path, cache_dir, ferplus_faces):
    for i, name in enumerate(("happy", "sad")):
        (tmp_path / "train" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "train" / name / "a.png"), paste(ferplus_faces[i], (40, 20, 64, 64), i))
    (tmp_path / "boxes.csv").write_text("path,x,y,w,h\ntrain/happy/a.png,40,20,64,64\n")
    split = D.load_split("folders", tmp_path, "train", 48, 1, boxes=tmp_path / "boxes.csv")
    happy = np.abs(split.images[0, ..., 0].astype(int) - ferplus_faces[0].astype(int)).mean()
    assert happy < 6 and split.images[1].shape == (48, 48, 1)  # sad has no box: the whole photo
    assert np.abs(split.images[1, ..., 0].astype(int) - ferplus_faces[1].astype(int)).mean() > 20


def test_expand_box_squares_then_grows_by_the_margin():
    assert expand_box((40, 30, 80, 96), square=True) == (32, 30, 96, 96)
    assert expand_box((40, 30, 80, 96), square=False) == (40, 30, 80, 96)
    assert expand_box((40, 30, 80, 80), margin=0.25, square=True) == (20, 10, 120, 120)


#: Boxes whose crop region has a corner on a rounding tie: the region ``expand_box`` gives and the pixels
#: ``Crops.cut`` cut, as ``emolib.boxes.crop_box`` gave them before the geometry moved to emolib.crops
#: (d4c3a2e). The arithmetic in another order moves some of these regions by a pixel, and crops
#: already in the cache would then differ from fresh ones.
TIED_BOXES = [
    ((13, 49, 42, 45), 0.2, True, (2.5, 40.0, 62.99999999999999, 62.99999999999999), (2, 40, 66, 103)),
    ((-6, 5, 50, 35), 0.05, False, (-8.5, 3.25, 55.00000000000001, 38.5), (-8, 3, 47, 42)),
    ((120, 32, 24, 50), 0.05, True, (104.5, 29.5, 55.00000000000001, 55.00000000000001), (104, 30, 160, 84)),
    ((110, 4, 14, 50), 0.05, False, (109.3, 1.5, 15.400000000000002, 55.00000000000001), (109, 2, 125, 57)),
    ((86, 26, 50, 30), 0.05, True, (83.5, 13.5, 55.00000000000001, 55.00000000000001), (84, 14, 138, 68)),
    ((90, -8, 60, 50), 0.05, False, (87.0, -10.5, 66.0, 55.00000000000001), (87, -10, 153, 45)),
]


@pytest.mark.parametrize("box, margin, square, region, corners", TIED_BOXES)
def test_dataset_crops_keep_their_regions_on_rounding_ties(box, margin, square, region, corners):
    assert expand_box(box, margin, square) == region  # exactly: the aligned crops' warp starts from it
    photo = np.random.default_rng(0).integers(0, 256, PHOTO, dtype=np.uint8)
    left, top, right, bottom = corners
    pad = 100
    padded = cv2.copyMakeBorder(photo, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    expected = padded[top + pad:bottom + pad, left + pad:right + pad]
    shrink = expected.shape[0] > 48
    expected = cv2.resize(expected, (48, 48), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    cut = B.Crops(np.array([box], np.float32), margin=margin, square=square).cut(photo, 0, 48)
    np.testing.assert_array_equal(cut, expected)


def test_margin_crop_pads_outside_and_centres_the_face(ferplus_faces):
    photo = paste(ferplus_faces[0], (4, 4, 48, 48), 0)
    crops = B.Crops(np.array([[4, 4, 48, 48], [0, 0, 0, 10], [200, 0, 10, 10]], np.float32), margin=0.25)
    face = crops.cut(photo, 0, 72)
    assert face.shape == (72, 72) and (face[:8, :8] == 0).all()  # beyond the photo's corner: black
    assert np.abs(face[12:60, 12:60].astype(int) - ferplus_faces[0].astype(int)).mean() < 1
    assert crops.cut(photo, 1, 48) is None and crops.cut(photo, 2, 48) is None  # empty, outside


def test_alignment_levels_the_eye_line(ferplus_faces):
    box = (48, 28, 64, 64)
    upright = paste(ferplus_faces[2], box, 0)
    centre = (box[0] + 32, box[1] + 32)
    tilt = cv2.getRotationMatrix2D(centre, -20, 1.0)  # the photo turned 20° clockwise
    tilted = cv2.warpAffine(upright, tilt, upright.shape[::-1])
    eyes = np.array([[box[0] + 0.3 * 64, box[1] + 0.35 * 64, box[0] + 0.7 * 64, box[1] + 0.35 * 64]])
    turned = (np.c_[eyes.reshape(2, 2), np.ones(2)] @ tilt.T).reshape(1, 4).astype(np.float32)
    boxes = np.array([box], np.float32)
    reference = B.Crops(boxes).cut(upright, 0, 48).astype(int)
    aligned = B.Crops(boxes, turned, align=True).cut(tilted, 0, 48).astype(int)
    unaligned = B.Crops(boxes).cut(tilted, 0, 48).astype(int)
    inner = (slice(10, 38), slice(10, 38))
    assert np.abs(aligned - reference)[inner].mean() < 0.5 * np.abs(unaligned - reference)[inner].mean()


def test_cache_keys_on_crop_settings(tmp_path, cache_dir, ferplus_faces):
    root = make_affectnet_csv(tmp_path / "affectnet", ferplus_faces)
    plain = D.load_split("affectnet", root, "train", 48, 1)
    again = D.load_split("affectnet", root, "train", 48, 1)
    wider = D.load_split("affectnet", root, "train", 48, 1, margin=0.2)
    assert again.fingerprint == plain.fingerprint and np.array_equal(again.images, plain.images)
    assert wider.fingerprint != plain.fingerprint and not np.array_equal(wider.images, plain.images)
    assert len(list(cache_dir.glob("*.npy"))) == 2


def test_data_cli_reports_affectnet(tmp_path, ferplus_faces):
    root = make_affectnet_csv(tmp_path / "affectnet", ferplus_faces)
    env = {**os.environ, "EMOLIB_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "emolib", "data", "--dataset", "affectnet", "--data", str(root),
               "--classes", "7", "--json"]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    summary = json.loads(out.stdout)["splits"]
    assert summary["train"]["images"] == 7 and summary["train"]["dropped"] == 4
    assert summary["train"]["skipped"]["count"] == 3 and summary["train"]["rows"] == 14
    assert summary["test"]["images"] == 1 and summary["test"]["valence_arousal"] == 1
    assert summary["train"]["valence_arousal"] == 7

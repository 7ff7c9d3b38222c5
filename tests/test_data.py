"""Data layer: real FER2013 / FER+ counts, RAF-DB and fer2013.csv fixtures, the cache, bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from emolib import data as D
from emolib import labels as L

FER2013_COUNTS = {
    "train": {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830,
              "surprise": 3171},
    "test": {"angry": 958, "disgust": 111, "fear": 1024, "happy": 1774, "neutral": 1233, "sad": 1247,
             "surprise": 831},
}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("EMOLIB_CACHE", str(directory))
    return directory


def write_face(path, value: int, size: int = 48) -> None:
    """A small gray image whose pixels all equal ``value`` (so tests can tell images apart)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size, size), value, dtype=np.uint8))


# --- real data -----------------------------------------------------------------------------------

@pytest.mark.parametrize("split", ["train", "test"])
def test_fer2013_folders_have_the_published_counts(fer2013_dir, split):
    loaded = D.load_split("fer2013", fer2013_dir, split)
    assert len(loaded) == sum(FER2013_COUNTS[split].values())  # 28,709 / 7,178
    assert D.class_counts(loaded.labels, loaded.classes) == {
        name: FER2013_COUNTS[split][name] for name in L.EMOTIONS_7}
    assert loaded.images.shape[1:] == (48, 48, 1) and loaded.images.dtype == np.uint8
    assert loaded.skipped == []


def test_ferplus_rows_before_dropping_and_majority_labels(ferplus_dir):
    summary = D.summarize("ferplus", ferplus_dir)["splits"]
    assert {s: summary[s]["rows"] for s in summary} == {"train": 28558, "valid": 3579, "test": 3573}
    train = summary["train"]
    assert train["images"] + train["dropped"] == 28558
    assert 0 < train["dropped"] < 28558 * 0.2  # unknown / not-a-face / no majority
    assert set(train["classes"]) == set(L.EMOTIONS_8)
    assert train["classes"]["contempt"] > 0


def test_ferplus_majority_follows_microsoft_rules():
    votes = np.array([
        [6, 2, 1, 0, 0, 0, 0, 0, 1, 0],  # neutral wins clearly
        [3, 3, 0, 0, 0, 0, 0, 0, 4, 0],  # no emotion above half → dropped
        [0, 0, 0, 0, 0, 0, 0, 0, 9, 1],  # unknown → dropped
        [1, 1, 1, 0, 0, 0, 0, 7, 0, 0],  # single votes are outliers: contempt 7/7
    ])
    labels, soft = D.ferplus_majority(votes)
    assert labels.tolist() == [0, -1, -1, 7]
    assert soft[3].tolist() == [0, 0, 0, 0, 0, 0, 0, 1.0]
    assert soft[0, 0] == pytest.approx(6 / 8)


# --- fixtures in the exact published layouts ------------------------------------------------------

def test_rafdb_both_layouts_map_labels(tmp_path, cache_dir):
    # folder layout: DATASET/train|test/1..7 (1 surprise … 7 neutral)
    for split in ("train", "test"):
        for label_id in range(1, 8):
            write_face(tmp_path / "folders" / "DATASET" / split / str(label_id) / f"{split}_{label_id}.jpg",
                       label_id * 30)
    folders = D.load_split("rafdb", tmp_path / "folders", "train")
    # official layout: EmoLabel/list_patition_label.txt + Image/aligned/<name>_aligned.jpg
    official = tmp_path / "official"
    lines = []
    for number, label_id in enumerate([1, 4, 7, 6, 5, 3, 2], start=1):
        name = f"train_{number:05d}"
        lines.append(f"{name}.jpg {label_id}")
        write_face(official / "Image" / "aligned" / f"{name}_aligned.jpg", label_id * 30)
    lines.append("test_00001.jpg 4")
    write_face(official / "Image" / "aligned" / "test_00001_aligned.jpg", 120)
    (official / "EmoLabel").mkdir()
    (official / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    train = D.load_split("rafdb", official, "train")
    test = D.load_split("rafdb", official, "test")

    for split in (folders, train):
        assert split.classes == L.EMOTIONS_7
        for image, label in zip(split.images, split.labels):  # pixel value encodes the RAF-DB id
            rafdb_id = int(round(image.mean() / 30))
            assert split.classes[label] == L.RAFDB_IDS[rafdb_id]
    assert len(train) == 7 and [test.classes[i] for i in test.labels] == ["happy"]


def test_rafdb_bad_label_line_names_file_and_line(tmp_path, cache_dir):
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "Image" / "aligned").mkdir(parents=True)
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 9\n")
    with pytest.raises(ValueError, match=r"list_patition_label.txt:1"):
        D.load_split("rafdb", tmp_path, "train")


def test_fer2013_csv_round_trips(tmp_path, cache_dir):
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(6, 48, 48), dtype=np.uint8)
    usages = ["Training", "Training", "Training", "PublicTest", "PrivateTest", "PrivateTest"]
    emotions = [0, 3, 6, 5, 1, 4]
    rows = ["emotion,pixels,Usage"] + [
        f"{e},{' '.join(map(str, face.ravel()))},{u}" for e, face, u in zip(emotions, faces, usages)]
    csv = tmp_path / "fer2013.csv"
    csv.write_text("\n".join(rows) + "\n")

    train = D.load_split("fer2013", tmp_path, "train")
    test = D.load_split("fer2013", csv, "test")  # the csv path itself works too
    assert np.array_equal(train.images[..., 0], faces[:3])
    assert [train.classes[i] for i in train.labels] == ["angry", "happy", "neutral"]
    assert np.array_equal(test.images[..., 0], faces[3:])
    assert [test.classes[i] for i in test.labels] == ["surprise", "disgust", "sad"]
    assert len(D.load_split("fer2013", csv, "private_test")) == 2


# --- the decode-once cache ----------------------------------------------------------------------

def make_tree(root, per_class: int = 3):
    for index, name in enumerate(("happy", "sad")):
        for i in range(per_class):
            write_face(root / "train" / name / f"{i}.png", 10 * index + i)
    return root


def test_cache_is_reused_then_invalidated_by_a_changed_file(tmp_path, cache_dir):
    root = make_tree(tmp_path / "ds")
    first = D.load_split("folders", root, "train")
    cached_files = sorted(cache_dir.iterdir())
    assert [p.suffix for p in cached_files] == [".json", ".npy"]

    again = D.load_split("folders", root, "train")
    assert again.fingerprint == first.fingerprint and np.array_equal(again.images, first.images)

    changed = root / "train" / "sad" / "0.png"
    write_face(changed, 200)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    rebuilt = D.load_split("folders", root, "train")
    assert rebuilt.fingerprint != first.fingerprint
    assert rebuilt.images[rebuilt.sources.index(str(changed))].max() == 200


def test_content_fingerprint_ignores_paths_and_mtimes_but_not_pixels(tmp_path, cache_dir):
    first = D.load_split("folders", make_tree(tmp_path / "ds"), "train")
    copy = make_tree(tmp_path / "elsewhere")  # the same faces, other paths and times
    os.utime(copy / "train" / "sad" / "0.png", ns=(0, 10**9))
    moved = D.load_split("folders", copy, "train")
    assert moved.fingerprint != first.fingerprint  # the cache key sees other files
    assert moved.content_fingerprint() == first.content_fingerprint()
    write_face(copy / "train" / "sad" / "0.png", 200)
    assert D.load_split("folders", copy, "train").content_fingerprint() != first.content_fingerprint()


def test_truncated_cache_is_rebuilt_not_read(tmp_path, cache_dir):
    root = make_tree(tmp_path / "ds")
    first = np.array(D.load_split("folders", root, "train").images)  # a copy: the split maps the file
    images_file = next(cache_dir.glob("*.npy"))
    images_file.write_bytes(images_file.read_bytes()[:200])  # a half-written cache file
    again = D.load_split("folders", root, "train")
    assert np.array_equal(again.images, first)
    assert np.load(images_file).shape == first.shape  # rewritten whole


def test_cache_can_be_disabled(tmp_path, cache_dir):
    root = make_tree(tmp_path / "ds")
    D.load_split("folders", root, "train", cache=False)
    assert not cache_dir.exists()


# --- bad data -----------------------------------------------------------------------------------

def test_corrupt_and_empty_images_are_skipped_and_reported(tmp_path, cache_dir):
    root = make_tree(tmp_path / "ds")
    (root / "train" / "happy" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "train" / "sad" / "empty.jpg").write_bytes(b"")
    loaded = D.load_split("folders", root, "train")
    assert len(loaded) == 6
    assert sorted(os.path.basename(p) for p in loaded.skipped) == ["corrupt.png", "empty.jpg"]
    summary = D.summarize("folders", root)["splits"]["train"]
    assert summary["skipped"]["count"] == 2 and len(summary["skipped"]["first"]) == 2


def test_missing_class_folder_is_a_clear_error(tmp_path, cache_dir):
    make_tree(tmp_path / "ds")
    with pytest.raises(FileNotFoundError, match=r"ds/train/angry"):
        D.load_split("folders", tmp_path / "ds", "train", classes=["happy", "sad", "angry"])
    (tmp_path / "fer" / "train" / "happy").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="class folder"):
        D.load_split("fer2013", tmp_path / "fer", "train")


def test_unknown_class_folder_is_a_clear_error(tmp_path, cache_dir):
    root = make_tree(tmp_path / "ds")
    (root / "train" / "bored").mkdir()
    with pytest.raises(ValueError, match=r"ds/train/bored"):
        D.load_split("folders", root, "train")


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(ValueError, match="fer2013"):
        D.get_dataset("affectnet-v9")


def test_folders_format_maps_aliases_like_ck_plus(tmp_path, cache_dir):
    for name in ("anger", "sadness", "happiness", "contempt"):
        write_face(tmp_path / "ck" / "test" / name / "a.png", 50)
    loaded = D.load_split("folders", tmp_path / "ck", "test")
    assert loaded.classes == ("angry", "happy", "sad", "contempt")


# --- splits, subsets, weights, plot, CLI ---------------------------------------------------------

def test_validation_split_is_stratified_seeded_and_disjoint():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    split = D.Split(np.zeros((200, 2, 2, 1), np.uint8), labels, ("a", "b", "c", "d"),
                    [str(i) for i in range(200)])
    train, val = D.train_val_split(split, 0.1, seed=3)
    assert not set(train.sources) & set(val.sources) and len(train) + len(val) == 200
    assert D.class_counts(val.labels, split.classes) == {"a": 10, "b": 5, "c": 3, "d": 2}
    assert D.train_val_split(split, 0.1, seed=3)[1].sources == val.sources
    assert D.train_val_split(split, 0.1, seed=4)[1].sources != val.sources
    small = D.limit_per_class(split, max_per_class=25, seed=0)
    assert D.class_counts(small.labels, split.classes) == {"a": 25, "b": 25, "c": 25, "d": 20}


def test_balanced_class_weights():
    weights = D.class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights[0] == pytest.approx(4 / (2 * 3)) and weights[1] == pytest.approx(4 / 2)
    assert weights[2] == 1.0  # absent class


def test_distribution_plot_has_one_bar_per_class_and_split():
    figure = D.plot_distribution({"train": {"happy": 3, "sad": 1}, "test": {"happy": 1, "sad": 2}})
    heights = sorted(p.get_height() for p in figure.axes[0].patches if p.get_height() > 0)
    assert heights == [1, 1, 2, 3]


def test_data_cli_prints_the_summary(tmp_path):
    root = make_tree(tmp_path / "ds")
    (root / "train" / "sad" / "broken.png").write_bytes(b"nope")
    env = {**os.environ, "EMOLIB_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-m", "emolib", "data", "--dataset", "folders", "--data", str(root),
                          "--json"], capture_output=True, text=True, env=env, check=True)
    summary = json.loads(out.stdout)
    assert summary["splits"]["train"]["classes"] == {"happy": 3, "sad": 3}
    assert summary["splits"]["train"]["skipped"]["count"] == 1
    assert "tensorflow" not in out.stderr.lower()  # the data command never starts TensorFlow

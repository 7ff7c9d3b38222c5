"""Training and evaluation read the memory-mapped decode cache batch by batch.

``emolib.fit_batches.FaceBatches`` (a Keras PyDataset) reads rows by index, shuffled per epoch with the seed;
subsets of a cached split are ``emolib.data.Rows`` views of the memory map; the cache is decoded in chunks.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest

from emolib import data as D
from emolib import evaluate as E
from emolib import train as T
from emolib.fit_batches import EpochFollower, FaceBatches

pytestmark = pytest.mark.backend  # run on every backend (see the Makefile)


def test_batches_cover_every_row_once_per_epoch_in_a_seeded_order():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    batches = FaceBatches(images, np.arange(10), batch_size=4, seed=3)
    assert len(batches) == 3
    orders = []
    for epoch in (0, 1):
        batches.set_epoch(epoch)
        rows = np.concatenate([batches[i][1] for i in range(len(batches))])
        assert sorted(rows) == list(range(10))
        np.testing.assert_array_equal(np.concatenate([batches[i][0] for i in range(3)]).ravel(), rows)
        np.testing.assert_array_equal(rows, np.random.default_rng([3, epoch]).permutation(10))
        orders.append(rows)
    assert not np.array_equal(*orders), "each epoch has its own order"
    kept = FaceBatches(images, np.arange(10), batch_size=4)
    assert kept[0][0].dtype == np.float32 and list(kept[2][1]) == [8, 9]


def test_a_short_last_batch_is_padded_to_the_device_count_with_weightless_rows():
    images = np.zeros((7, 2, 2, 1), dtype=np.uint8)
    batches = FaceBatches(images, np.arange(7) % 2, batch_size=4, multiple=2, class_weight={0: 2.0, 1: 0.5})
    first, last = batches[0], batches[1]
    assert len(first[0]) == 4 and list(first[2]) == [2.0, 0.5, 2.0, 0.5]
    assert len(last[0]) == 4 and list(last[2]) == [2.0, 0.5, 2.0, 0.0]  # rows 4, 5, 6 and one pad
    unweighted = FaceBatches(images, np.arange(7) % 2, batch_size=4, multiple=2)
    assert list(unweighted[0][2]) == [1.0] * 4, "every batch has weights once one needs them"


def test_class_weights_are_given_per_face_as_keras_fit_does():
    from keras.src.trainers.data_adapters.data_adapter_utils import class_weight_to_sample_weights

    weights = {0: 3.0, 1: 0.5, 2: 1.5}
    rows = np.random.default_rng(0).dirichlet(np.ones(3), size=12).astype(np.float32)
    for targets in (rows, np.argmax(rows, axis=1)):  # soft rows (votes, teacher) and class indices
        batches = FaceBatches(np.zeros((12, 1, 1, 1), np.uint8), targets, batch_size=12, class_weight=weights)
        np.testing.assert_allclose(batches[0][2], class_weight_to_sample_weights(targets, weights))


def test_fit_feeds_the_batches_of_each_epoch_it_runs():
    class Recording(FaceBatches):
        def __getitem__(self, index):
            self.seen.append(self.epoch)
            return super().__getitem__(index)

    batches = Recording(np.zeros((12, 2, 2, 1), np.uint8), np.arange(12) % 3, batch_size=4, seed=0)
    batches.seen = []
    model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(batches, epochs=3, initial_epoch=1, shuffle=False, verbose=0,
              callbacks=[EpochFollower(batches)])
    trained = batches.seen[-6:]  # before them, Keras may peek at batches to learn their shapes
    assert trained == [1, 1, 1, 2, 2, 2]


def _faces(root, count: int = 10, corrupt: int = 4):
    """``count`` gray faces in two class folders; file number ``corrupt`` is not an image."""
    rng = np.random.default_rng(0)
    for i in range(count):
        path = root / "train" / ("happy" if i % 2 else "sad") / f"{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i == corrupt:
            path.write_bytes(b"not a png")
        else:
            cv2.imwrite(str(path), rng.integers(0, 256, (20, 20), dtype=np.uint8))
    return root


def test_the_cache_is_built_chunk_by_chunk_and_mapped_not_copied(tmp_path, monkeypatch):
    root = _faces(tmp_path / "ds")
    in_memory = D.load_split("folders", root, "train", size=16, cache=False)
    monkeypatch.setattr(D, "DECODE_CHUNK", 3)  # the corrupt file falls inside the second chunk
    cached = D.load_split("folders", root, "train", size=16, cache=tmp_path / "cache")
    assert isinstance(cached.images, np.memmap) and not isinstance(in_memory.images, np.memmap)
    np.testing.assert_array_equal(cached.images, in_memory.images)
    assert cached.sources == in_memory.sources and len(cached.skipped) == 1
    again = D.load_split("folders", root, "train", size=16, cache=tmp_path / "cache")  # read, not decoded
    np.testing.assert_array_equal(again.images, in_memory.images)
    assert again.content_fingerprint() == in_memory.content_fingerprint()

    train, val = D.train_val_split(cached, 0.3, seed=0)
    assert isinstance(train.images, D.Rows) and isinstance(train.images.base, np.memmap)
    smaller = D.limit_per_class(train, 2)
    assert isinstance(smaller.images, D.Rows) and smaller.images.base is train.images.base
    memory_train, _ = D.train_val_split(in_memory, 0.3, seed=0)
    np.testing.assert_array_equal(np.asarray(train.images), np.asarray(memory_train.images))
    assert train.images.shape == (len(train), 16, 16, 1) and train.images[0].shape == (16, 16, 1)
    copy = np.asarray(memory_train.images)
    np.testing.assert_array_equal(train.images[1:3, :8, 2], copy[1:3, :8, 2])
    np.testing.assert_array_equal(train.images[2, :8], copy[2, :8])


def test_a_split_without_readable_images_loads_empty_cached_or_not(tmp_path):
    (tmp_path / "empty" / "train" / "happy").mkdir(parents=True)
    _faces(tmp_path / "unreadable", count=1, corrupt=0)
    for root, skipped in ((tmp_path / "empty", 0), (tmp_path / "unreadable", 1)):
        for cache in (tmp_path / "cache", tmp_path / "cache", False):  # build, read, no cache
            split = D.load_split("folders", root, "train", size=16, cache=cache)
            assert split.images.shape == (0, 16, 16, 1) and len(split.skipped) == skipped


def _in_memory(split: D.Split) -> D.Split:
    return D.Split(np.array(split.images), split.labels, split.classes, split.sources,
                   soft_labels=split.soft_labels)


@pytest.mark.slow
def test_training_from_the_memory_map_gives_the_in_memory_results(fer2013_dir, tmp_path):
    """Same seed, same order: a run on memory-mapped splits and one on in-memory copies agree exactly."""
    mapped = T.load_data("fer2013", fer2013_dir, 48, 1, max_per_class=12, cache=tmp_path / "cache")
    train_split, val_split, test_split, info = mapped
    assert isinstance(train_split.images, D.Rows) and isinstance(train_split.images.base, np.memmap)
    config = T.TrainConfig(backbone="simple_cnn", epochs=2, batch_size=16, class_weights="balanced", seed=0)
    runs = [T.train(config, *splits, output=tmp_path / name, data_info=info, verbose=0)
            for name, splits in (("mapped", mapped[:3]),
                                 ("memory", [_in_memory(s) for s in mapped[:3]]))]
    assert [row["loss"] for row in runs[0].history] == [row["loss"] for row in runs[1].history]
    assert runs[0].metrics["test"] == runs[1].metrics["test"]
    for mine, theirs in zip(runs[0].model.get_weights(), runs[1].model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    probabilities = E.predict_proba(runs[0].model, test_split.images)
    np.testing.assert_array_equal(probabilities, E.predict_proba(runs[0].model, np.array(test_split.images)))


class BoundedRows(D.Rows):
    """A view that refuses to give more than ``limit`` faces at once, or the whole split as one array."""

    def __init__(self, base, index, limit: int):
        super().__init__(base, index)
        self.limit = limit

    def __getitem__(self, key):
        rows = self.index[key[0] if isinstance(key, tuple) else key]
        if np.size(rows) > self.limit:
            raise AssertionError(f"{np.size(rows)} faces read at once (at most {self.limit})")
        return super().__getitem__(key)

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the whole split read as one array")

    def take(self, index):
        return BoundedRows(self.base, self.index[np.asarray(index)], self.limit)


def test_a_whole_run_and_its_calibration_read_the_splits_a_chunk_at_a_time(tmp_path):
    """Training, best-weights evaluation, report, card and logit adjustment never hold a split (issue 33)."""
    from emolib.runs import adjust

    size = 160
    limit = D.chunk_rows((size, size, 1))
    assert 32 <= limit < 100  # large faces: fewer rows per chunk than the 256 of 48 px faces
    rng = np.random.default_rng(0)

    def split(count):
        images = rng.integers(0, 256, (count, size, size, 1), dtype=np.uint8)
        return D.Split(BoundedRows(images, np.arange(count), limit), np.arange(count) % 2, ("happy", "sad"),
                       [f"face-{i}" for i in range(count)])

    train_split, val_split, test_split = split(96), split(100), split(120)
    config = T.TrainConfig(backbone="simple_cnn", epochs=1, batch_size=32, input_size=size, channels=1)
    result = T.train(config, train_split, val_split, test_split, output=tmp_path, verbose=0)
    assert result.metrics["test"]["samples"] == 120 and result.metrics["val"]["samples"] == 100
    adjusted = adjust.adjust_run(result.run_dir, val_split, test_split)
    assert (adjusted / "model.json").is_file()

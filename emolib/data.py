"""Datasets: the built-in formats, decode-once cache, validation split, class counts and weights.

A *format* (``rafdb``, ``fer2013``, ``ferplus``, ``folders``; registered in :mod:`emolib.formats`)
scans a dataset folder into a :class:`~emolib.formats.Listing` — image sources and labels in canonical
order. :func:`load_split` decodes a listing into uint8 arrays once, chunk by chunk, straight into a
memory-mapped cache file; later loads of unchanged files map that file instead of decoding. A subset
of a split (val carve, per-class limit) is a :class:`Rows` view: rows are read from the map only when
a batch is sliced, so a split larger than memory never gets copied whole.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emolib import labels as L
from emolib import paths, photo_datasets  # noqa: F401  (photo_datasets registers affectnet and expw)
from emolib.boxes import source_file
from emolib.files import atomic_path, write_json
from emolib.formats import (
    DATASETS,
    DatasetFormat,
    Listing,
    check_unique,
    decode_crop,
    fit_image,
    image_files,
    image_names,
    numbers,
    read_box_file,
    read_image,
    read_table,
    read_text,
    register_dataset,
    require_dir,
)

CACHE_VERSION = 1
DECODE_CHUNK = 256  # images decoded (and held in memory) at a time while a cache is built
#: Most values (rows × height × width × channels) that a step reads from a split at a time: 256 faces
#: of 48×48 RGB. Larger faces give fewer rows, so a chunk's size (and a model's activations on it),
#: not the split's length, bounds the memory of evaluation, prediction and fingerprints.
CHUNK_VALUES = 256 * 48 * 48 * 3


def chunk_rows(image_shape: Sequence[int], most: int | None = None) -> int:
    """Faces of shape ``image_shape`` (h, w, c) to read at a time: at most ``most`` (default 256) and
    at most :data:`CHUNK_VALUES` values, at least one."""
    return max(1, min(most or 256, CHUNK_VALUES // max(int(np.prod(image_shape)), 1)))


class Rows:
    """Rows ``index`` of an image array (usually the memory-mapped cache), read only when asked for.

    Indexing (rows first, then pixels: ``rows[:8, :40, :40]``) gives a NumPy array of just those rows;
    :meth:`take` gives another view;
    ``np.asarray(rows)`` reads them all (for small splits only).
    """

    def __init__(self, base: np.ndarray, index: np.ndarray):
        self.base = base
        self.index = np.asarray(index, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.base.shape[1:])

    @property
    def dtype(self):
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        rows, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        index = self.index[rows]
        picked = self.base[index]
        if not rest:
            return picked
        return picked[(slice(None), *rest)] if np.ndim(index) else picked[rest]

    def __array__(self, dtype=None, copy=None):
        rows = self.base[self.index]
        return rows if dtype is None else rows.astype(dtype)

    def take(self, index) -> Rows:
        """The rows ``index`` (integer array) of this view, as a view."""
        return Rows(self.base, self.index[np.asarray(index)])


@dataclass
class Split:
    """A decoded split: ``images`` (n, h, w, c) uint8 and ``labels`` (n,) indices into ``classes``.

    ``images`` is an array (memory-mapped from the cache, or in memory) or a :class:`Rows` view of one.
    ``skipped`` lists the sources that could not be read, ``skip_reasons`` why (in the same order).
    """

    images: np.ndarray | Rows
    labels: np.ndarray
    classes: tuple[str, ...]
    sources: list[str]
    skipped: list[str] = field(default_factory=list)
    soft_labels: np.ndarray | None = None
    fingerprint: str = ""
    dropped: int = 0
    valence_arousal: np.ndarray | None = None
    skip_reasons: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def content_fingerprint(self) -> str:
        """``<n>-<hash>`` of the decoded images and labels: the same faces give the same value on any
        machine (``fingerprint``, the cache key, also covers file paths and modification times)."""
        digest = hashlib.sha256(np.asarray(self.labels, dtype=np.int64).tobytes())
        rows = chunk_rows(self.images.shape[1:])
        for start in range(0, len(self), rows):  # chunk by chunk: the same digest, no copy
            digest.update(np.ascontiguousarray(self.images[start:start + rows]).tobytes())
        return f"{len(self)}-{digest.hexdigest()[:24]}"

    def subset(self, index) -> Split:
        """The rows ``index`` (a boolean mask or integer array) of this split; images as a :class:`Rows`
        view, read batch by batch."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        images = self.images.take(index) if isinstance(self.images, Rows) else Rows(self.images, index)
        return Split(images, self.labels[index], self.classes,
                     [self.sources[i] for i in index], self.skipped,
                     None if self.soft_labels is None else self.soft_labels[index], self.fingerprint,
                     self.dropped,
                     None if self.valence_arousal is None else self.valence_arousal[index],
                     self.skip_reasons)


def check_options(name: str, options: dict) -> None:
    """Refuse an option that format ``name`` does not take (a ValueError naming the ones it takes)."""
    parameters = list(inspect.signature(get_dataset(name).scan).parameters)[2:]  # after root, split
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise ValueError(f"the {name} format takes no option {', '.join(unknown)} "
                         f"(its options: {', '.join(parameters) or 'none'})")


def list_datasets() -> list[str]:
    """The names of the registered datasets."""
    return DATASETS.names()


def get_dataset(name: str) -> DatasetFormat:
    """The dataset format called ``name`` (clear error listing the registered ones)."""
    return DATASETS.lookup(name)


# ---------------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------------

def _subfolders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_class_folders(split_dir: Path, folder_to_class: dict[str, str], classes: Sequence[str]) -> Listing:
    """Scan ``split_dir/<folder>/*`` where each folder name maps to a canonical class.

    Every folder of ``folder_to_class`` must exist; a folder not in it is an error naming its path.
    """
    require_dir(split_dir, "split folder")
    unknown = [name for name in _subfolders(split_dir) if name not in folder_to_class]
    if unknown:
        raise ValueError(f"unknown class folder {split_dir / unknown[0]} (expected one of "
                         f"{sorted(folder_to_class)})")
    index = {name: i for i, name in enumerate(classes)}
    sources, targets = [], []
    for folder, emotion in folder_to_class.items():
        files = image_files(require_dir(split_dir / folder, f"class folder for {emotion!r}"))
        sources += [str(p) for p in files]
        targets += [index[emotion]] * len(files)
    return Listing(sources, np.asarray(targets, dtype=np.int64), tuple(classes))


def _fer2013_splits(root: Path) -> list[str]:
    if _fer2013_csv(root):
        return ["train", "test", "public_test", "private_test"]
    return [name for name in ("train", "test") if (root / name).is_dir()]


def _fer2013_csv(root: Path) -> Path | None:
    if root.is_file() and root.suffix == ".csv":
        return root
    return root / "fer2013.csv" if (root / "fer2013.csv").is_file() else None


_FER2013_USAGE = {"train": ("Training",), "test": ("PublicTest", "PrivateTest"),
                  "public_test": ("PublicTest",), "private_test": ("PrivateTest",)}
#: FER2013's faces are 48 × 48 gray: a pixels cell holds 2304 values in 0..255.
FER2013_SIDE = 48


def fer2013_pixels(text) -> np.ndarray:
    """A fer2013.csv ``pixels`` cell → (48, 48) uint8; a ``ValueError`` saying what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("no pixel values")
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise ValueError("a pixel value is not a whole number") from None
    if values.size != FER2013_SIDE ** 2:
        raise ValueError(f"{values.size} pixel values, not {FER2013_SIDE ** 2} "
                         f"({FER2013_SIDE}×{FER2013_SIDE})")
    if values.min() < 0 or values.max() > 255:
        raise ValueError("a pixel value is outside 0..255")
    return values.astype(np.uint8).reshape(FER2013_SIDE, FER2013_SIDE)


@register_dataset("fer2013", _fer2013_splits)
def scan_fer2013(root: Path, split: str) -> Listing:
    """FER2013: Kaggle folders ``train|test/<class>/*`` or the original ``fer2013.csv`` (pixels, Usage)."""
    csv = _fer2013_csv(root)
    if csv is None:
        folders = {name: name for name in L.EMOTIONS_7}
        return scan_class_folders(root / split, folders, L.EMOTIONS_7)
    if split not in _FER2013_USAGE:
        raise ValueError(f"fer2013.csv splits are {sorted(_FER2013_USAGE)}, not {split!r}")
    table = read_table(csv, "the columns emotion,pixels,Usage", dtype={"pixels": str, "Usage": str})
    missing = {"emotion", "pixels", "Usage"} - set(table.columns)
    if missing:
        raise ValueError(f"{csv} lacks column(s) {sorted(missing)} (expected emotion,pixels,Usage)")
    usages = sorted({u for names in _FER2013_USAGE.values() for u in names})
    unknown = table.index[~table["Usage"].isin(usages)]
    if len(unknown):  # such a row would belong to no split: lost without a word
        usage = table.at[unknown[0], "Usage"]
        raise ValueError(f"{csv}:{unknown[0] + 2}: Usage {usage if isinstance(usage, str) else ''!r} is "
                         f"none of {usages}: every row belongs to one of them")
    emotions = numbers(table, ["emotion"], csv, f"an emotion id in {sorted(L.FER2013_IDS)}", 2, whole=True)
    unknown = np.flatnonzero(~np.isin(emotions[:, 0], list(L.FER2013_IDS)))
    if len(unknown):
        raise ValueError(f"{csv}:{unknown[0] + 2}: unknown emotion id {emotions[unknown[0], 0]:g} "
                         f"(expected one of {sorted(L.FER2013_IDS)})")
    pixels, sources, problems = [], [], {}
    rows = np.flatnonzero(table["Usage"].isin(_FER2013_USAGE[split]).to_numpy())
    for position, row in enumerate(rows):
        try:
            pixels.append(fer2013_pixels(table.at[row, "pixels"]))
        except ValueError as error:  # an unreadable row: load_split skips it, with the reason
            pixels.append(None)
            problems[position] = f"line {row + 2}: {error}"
        sources.append(f"{csv}#row={row}")
    return Listing(sources, emotions[rows, 0].astype(np.int64), L.EMOTIONS_7, pixels=pixels,
                   problems=problems)


def _rafdb_root(root: Path) -> Path:
    return root / "DATASET" if (root / "DATASET").is_dir() and not (root / "train").is_dir() else root


def _rafdb_splits(root: Path) -> list[str]:
    return ["train", "test"]


@register_dataset("rafdb", _rafdb_splits)
def scan_rafdb(root: Path, split: str) -> Listing:
    """RAF-DB basic: ``DATASET/train|test/1..7`` folders or ``EmoLabel/list_patition_label.txt`` + aligned."""
    if split not in ("train", "test"):
        raise ValueError(f"RAF-DB splits are train and test, not {split!r}")
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    if label_file.is_file():
        image_dir = require_dir(root / "Image" / "aligned", "RAF-DB aligned image folder")
        index = {name: i for i, name in enumerate(L.EMOTIONS_7)}
        sources, targets = [], []
        names = []
        for number, line in enumerate(read_text(label_file).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                name, label_id = line.split()
                emotion = L.RAFDB_IDS[int(label_id)]
            except (ValueError, KeyError):
                raise ValueError(f"{label_file}:{number}: cannot read {line!r} (expected 'train_00001.jpg 5'"
                                 f" with a label 1..7)") from None
            names.append((name, number))
            if not name.startswith(split + "_"):
                continue
            stem = Path(name).stem
            sources.append(str(image_dir / f"{stem}_aligned{Path(name).suffix}"))
            targets.append(index[emotion])
        check_unique(names, label_file)
        return Listing(sources, np.asarray(targets, dtype=np.int64), L.EMOTIONS_7)
    folders = {str(i): emotion for i, emotion in L.RAFDB_IDS.items()}
    return scan_class_folders(_rafdb_root(root) / split, folders, L.EMOTIONS_7)


_FERPLUS_SPLITS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}


def _ferplus_splits(root: Path) -> list[str]:
    return list(_FERPLUS_SPLITS)


def ferplus_majority(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FER+ 'majority' labels from the 10 vote columns, as Microsoft's FERPlus code does.

    Single votes are dropped as outliers; a face keeps its top emotion only when that emotion has more
    than half of the remaining votes and is one of the 8 emotions (not unknown / not-a-face).

    Returns
    -------
    labels : (n,) int, index into the 8 FER+ emotions in vote-column order, or -1 where dropped.
    soft : (n, 8) float, the outlier-free vote distribution over the 8 emotions.
    """
    votes = np.where(votes <= 1, 0, votes).astype(np.float64)
    total = votes.sum(axis=1)
    top = votes.argmax(axis=1)
    top_votes = votes.max(axis=1)
    keep = (top_votes > 0.5 * total) & (top < 8)
    emotion_votes = votes[:, :8]
    sums = emotion_votes.sum(axis=1, keepdims=True)
    soft = np.divide(emotion_votes, sums, out=np.zeros_like(emotion_votes), where=sums > 0)
    return np.where(keep, top, -1), soft


@register_dataset("ferplus", _ferplus_splits)
def scan_ferplus(root: Path, split: str) -> Listing:
    """FER+: ``FER2013Train|Valid|Test/label.csv`` votes → majority label (8 classes with contempt)."""
    if split not in _FERPLUS_SPLITS:
        raise ValueError(f"FER+ splits are {list(_FERPLUS_SPLITS)}, not {split!r}")
    folder = require_dir(root / _FERPLUS_SPLITS[split], "FER+ split folder")
    label_file = folder / "label.csv"
    if not label_file.is_file():
        raise FileNotFoundError(f"FER+ label file not found: {label_file}")
    expected = f"12 columns: image name, face box, then 10 vote counts ({', '.join(L.FERPLUS_VOTE_COLUMNS)})"
    table = read_table(label_file, expected, header=None, dtype=str, keep_default_na=False)
    if table.shape[1] != 12:
        raise ValueError(f"{label_file}: {table.shape[1]} columns; expected {expected}")
    names = image_names(table.iloc[:, 0], label_file, 1)
    votes = numbers(table, slice(2, None), label_file, f"{expected}, each a whole number ≥ 0", 1,
                    minimum=0, whole=True).astype(np.int64)
    majority, soft = ferplus_majority(votes)
    # vote-column order → canonical 8-class order
    to_canonical = np.array([L.EMOTIONS_8.index(L.canonical(c)) for c in L.FERPLUS_VOTE_COLUMNS[:8]])
    keep = majority >= 0
    canonical_soft = np.zeros_like(soft)
    canonical_soft[:, to_canonical] = soft
    sources = [str(folder / name) for name, k in zip(names, keep) if k]
    return Listing(sources, to_canonical[majority[keep]], L.EMOTIONS_8,
                   soft_labels=canonical_soft[keep].astype(np.float32), dropped=int((~keep).sum()))


def _folder_splits(root: Path) -> list[str]:
    return _subfolders(root)


@register_dataset("folders", _folder_splits)
def scan_folders(root: Path, split: str, classes: Sequence[str] | None = None,
                 boxes: str | os.PathLike | None = None, margin: float = 0.0, square: bool = True) -> Listing:
    """Any ``<split>/<class>/*`` tree (AffectNet-style, CK+): folder names are emotions or aliases.

    ``classes`` lists the class folder names to expect (default: all folders of the split); each is
    mapped to its canonical emotion, so 'sadness' and 'anger' folders work. ``boxes``, a CSV file
    ``path,x,y,w,h`` (paths relative to ``root``), crops each listed image to its face box
    (``margin``, ``square``: :class:`emolib.boxes.Crops`).
    """
    split_dir = require_dir(root / split, "split folder")
    names = list(classes) if classes else _subfolders(split_dir)
    folder_to_class = {}
    for name in names:
        try:
            folder_to_class[name] = L.canonical(name)
        except ValueError:
            raise ValueError(f"unknown class folder {split_dir / name}: not an emotion name") from None
    listing = scan_class_folders(split_dir, folder_to_class, L.canonical_classes(folder_to_class.values()))
    if boxes is not None:
        listing.crops = read_box_file(boxes, root, listing.sources, margin, square)
    return listing


# ---------------------------------------------------------------------------------------------------
# Decoding and the decode-once cache
# ---------------------------------------------------------------------------------------------------

def decode_face(source: str, size: int, channels: int) -> np.ndarray:
    """Read one image file → (size, size, channels) uint8 (errors: :func:`read_image`)."""
    return fit_image(read_image(source, channels), size, channels)


def fingerprint(name: str, listing: Listing, size: int, channels: int, root: Path) -> str:
    """Hash of the file list with sizes and mtimes (or the csv's), labels, and decode settings."""
    digest = hashlib.sha256(f"{CACHE_VERSION}|{name}|{size}|{channels}".encode())
    digest.update(listing.labels.tobytes())
    if listing.pixels is not None:
        files = [listing.sources[0].split("#")[0]] if listing.sources else []
    elif listing.crops is not None:
        digest.update(listing.crops.digest())
        files = list(dict.fromkeys(source_file(s) for s in listing.sources))
    else:
        files = listing.sources
    for source in files:
        try:
            stat = os.stat(source)
            line = f"{source}|{stat.st_size}|{stat.st_mtime_ns}\n"
        except OSError:
            line = f"{source}|missing\n"
        digest.update(line.encode(errors="surrogateescape"))  # a file name need not be UTF-8
    return digest.hexdigest()[:24]


def _cache_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    return cache_dir / f"{key}.npy", cache_dir / f"{key}.json"


def _read_cache(cache_dir: Path, key: str, count: int, size: int, channels: int):
    images_path, meta_path = _cache_paths(cache_dir, key)
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(images_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    # the file has a row per source; the kept images come first (older caches: exactly the kept rows)
    if images.shape[1:] != (size, size, channels) or meta["count"] != count or len(images) < meta["kept"]:
        return None
    return images[:meta["kept"]], meta


def _build_cache(cache_dir: Path, key: str, listing: Listing, size: int, channels: int, workers: int,
                 progress: bool):
    """Decode ``listing`` chunk by chunk into the memory-mapped cache file; the images it maps, the
    kept mask and why each other row was skipped."""
    count = len(listing.sources)
    if not count:  # nothing to decode, nor to map
        return np.zeros((0, size, size, channels), dtype=np.uint8), np.zeros(0, dtype=bool), {}
    images_path, meta_path = _cache_paths(cache_dir, key)
    with atomic_path(images_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(count, size, size, channels))
        keep, reasons = _decode_into(listing, out, size, channels, workers, progress)
        out.flush()
        del out
    meta = {"count": count, "kept": int(keep.sum()), "keep": keep.tolist(),
            "reasons": {str(row): reason for row, reason in reasons.items()}}
    write_json(meta_path, meta)  # written last: its presence means the images are complete
    return _read_cache(cache_dir, key, count, size, channels)[0], keep, reasons


def load_split(
    name: str,
    root: str | os.PathLike,
    split: str,
    size: int = 48,
    channels: int = 1,
    cache: bool | str | os.PathLike = True,
    workers: int = 8,
    progress: bool = False,
    **options,
) -> Split:
    """Decode split ``split`` of dataset ``name`` at ``root`` into uint8 arrays (decode once, then cached).

    Parameters
    ----------
    name : str
        A registered dataset format (``DATASETS``).
    root : path
        Dataset folder (or ``fer2013.csv``).
    size, channels : int
        Output images are ``(size, size, channels)`` uint8; gray (1) or RGB (3).
    cache : bool or path
        ``True``: cache under :func:`emolib.paths.cache_dir`; a path: cache there; ``False``: no cache.
        The key fingerprints file names, sizes and mtimes: a changed file rebuilds the cache.
    options
        Format options, e.g. ``classes=[...]`` for ``folders``.

    Unreadable, corrupt, empty or too large images are skipped: listed in ``Split.skipped``, with the
    reason in ``Split.skip_reasons``.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    check_options(name, options)
    listing = get_dataset(name).scan(root, split, **options)
    key = f"{name}-{split}-{size}x{size}x{channels}-{fingerprint(name, listing, size, channels, root)}"
    cache_dir = Path(cache) if isinstance(cache, (str, os.PathLike)) else paths.cache_dir()
    cached = _read_cache(cache_dir, key, len(listing.sources), size, channels) if cache else None
    if cached is not None:
        images, meta = cached
        keep = np.asarray(meta["keep"], dtype=bool)
        reasons = {int(row): reason for row, reason in meta.get("reasons", {}).items()}
    elif cache:
        images, keep, reasons = _build_cache(cache_dir, key, listing, size, channels, workers, progress)
    else:
        images = np.empty((len(listing.sources), size, size, channels), dtype=np.uint8)
        keep, reasons = _decode_into(listing, images, size, channels, workers, progress)
        images = images[:keep.sum()]
    skipped_rows = np.flatnonzero(~keep)
    skipped = [listing.sources[row] for row in skipped_rows]
    return Split(
        images=images,
        labels=listing.labels[keep],
        classes=listing.classes,
        sources=[s for s, k in zip(listing.sources, keep) if k],
        skipped=skipped,
        soft_labels=None if listing.soft_labels is None else listing.soft_labels[keep],
        fingerprint=key,
        dropped=listing.dropped,
        valence_arousal=None if listing.valence_arousal is None else listing.valence_arousal[keep],
        skip_reasons=[reasons.get(int(row), NO_REASON) for row in skipped_rows],
    )


#: the skip reason of a cache built before reasons were recorded
NO_REASON = "unreadable (the reason was not recorded: a cache from an older emolib)"


def _decode_row(listing: Listing, row: int, size: int, channels: int) -> np.ndarray | str:
    """Row ``row`` of ``listing`` decoded to (size, size, channels) uint8, or why it cannot be."""
    try:
        if listing.pixels is not None:
            pixels = listing.pixels[row]
            if pixels is None:
                return listing.problems.get(row, "unreadable")
            return fit_image(pixels, size, channels)
        if listing.crops is not None:
            return decode_crop(listing.sources[row], listing.crops, row, size, channels)
        return decode_face(listing.sources[row], size, channels)
    except (ValueError, OSError) as error:  # imageio's errors, a missing or unreadable file
        return str(error) or type(error).__name__


def _decode_into(listing: Listing, out: np.ndarray, size: int, channels: int, workers: int,
                 progress: bool) -> tuple[np.ndarray, dict[int, str]]:
    """Decode ``listing`` :data:`DECODE_CHUNK` images at a time into the first rows of ``out`` (the
    readable images, in order); the mask of readable sources and why each other one was skipped."""
    from tqdm.auto import tqdm

    count = len(listing.sources)
    keep = np.zeros(count, dtype=bool)
    reasons: dict[int, str] = {}
    kept = 0
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=count, desc="decoding", disable=not progress) as bar:
        for start in range(0, count, DECODE_CHUNK):
            stop = min(count, start + DECODE_CHUNK)
            decoded = pool.map(lambda row: _decode_row(listing, row, size, channels), range(start, stop))
            for row, image in zip(range(start, stop), decoded):
                if isinstance(image, str):
                    reasons[row] = image
                else:
                    out[kept] = image
                    kept += 1
                    keep[row] = True
            bar.update(stop - start)
    return keep, reasons


# ---------------------------------------------------------------------------------------------------
# Splits, subsets, counts, weights, summary
# ---------------------------------------------------------------------------------------------------

#: Share of a training split carved out (stratified, seeded) for validation when a dataset has no own.
VAL_FRACTION = 0.1


def train_val_split(split: Split, val_fraction: float = VAL_FRACTION, seed: int = 0) -> tuple[Split, Split]:
    """Stratified, seeded validation split carved from a training split (the test split is never used)."""
    from sklearn.model_selection import train_test_split

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, not {val_fraction}")
    index = np.arange(len(split))
    train_index, val_index = train_test_split(index, test_size=val_fraction, random_state=seed,
                                              stratify=split.labels)
    return split.subset(np.sort(train_index)), split.subset(np.sort(val_index))


def limit_per_class(split: Split, max_per_class: int | None = None, fraction: float | None = None,
                    seed: int = 0) -> Split:
    """A seeded subset keeping at most ``max_per_class`` images (or a ``fraction``) of each class."""
    if max_per_class is None and fraction is None:
        return split
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(split.labels):
        rows = np.flatnonzero(split.labels == label)
        take = len(rows) if max_per_class is None else min(len(rows), max_per_class)
        if fraction is not None:
            take = min(take, max(1, int(round(len(rows) * fraction))))
        chosen.append(rng.choice(rows, size=take, replace=False))
    return split.subset(np.sort(np.concatenate(chosen)))


def class_counts(labels: np.ndarray, classes: Sequence[str]) -> dict[str, int]:
    """Images per class, in class order (classes without images count 0)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    return {name: int(n) for name, n in zip(classes, counts)}


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Balanced class weights ``n / (k * n_c)`` (scikit-learn's 'balanced'); absent classes get 1."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def summarize(name: str, root: str | os.PathLike, max_skipped: int = 10, **options) -> dict:
    """Per split: image count, per-class counts, and skipped files (count and first paths); for formats
    with valence / arousal, how many faces have both.

    Every file is decoded (through the cache) so that unreadable ones are found.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    summary = {"dataset": name, "root": str(root), "splits": {}}
    for split_name in get_dataset(name).splits(root):
        split = load_split(name, root, split_name, **options)
        summary["splits"][split_name] = {
            "images": len(split),
            "rows": len(split) + len(split.skipped) + split.dropped,
            "dropped": split.dropped,
            "classes": class_counts(split.labels, split.classes),
            "skipped": {"count": len(split.skipped), "first": split.skipped[:max_skipped],
                        "reasons": split.skip_reasons[:max_skipped]},
        }
        if split.valence_arousal is not None:  # faces with both values annotated
            summary["splits"][split_name]["valence_arousal"] = int(
                np.isfinite(split.valence_arousal).all(axis=1).sum())
    return summary


def plot_distribution(counts_by_split: dict[str, dict[str, int]], title: str = "Class distribution"):
    """Seaborn bar plot of images per class, one colour per split (the original distribution figure)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    rows = [{"split": s, "emotion": e, "images": n} for s, c in counts_by_split.items() for e, n in c.items()]
    fig, ax = plt.subplots(figsize=(8, 4))
    sns.barplot(data=pd.DataFrame(rows), x="emotion", y="images", hue="split", ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig

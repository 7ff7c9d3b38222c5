"""Dataset formats whose faces are boxes in photos: ``affectnet`` (both releases) and ``expw``.

Each scan returns a :class:`emolib.formats.Listing` with :class:`emolib.boxes.Crops`, so the faces are cut
from their photos (``margin``, ``square``, ``align``) once, into the decode cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emolib import labels as L
from emolib.boxes import Crops, eye_centres, face_source
from emolib.formats import (
    Listing,
    check_unique,
    image_files,
    image_names,
    numbers,
    read_table,
    read_text,
    register_dataset,
    require_dir,
)

#: AffectNet's split names → (CSV release file, per-image release folder). AffectNet has no public
#: test set: its validation set is emolib's ``test`` split; validation is carved from ``train``.
_AFFECTNET_SPLITS = {"train": ("training.csv", "train_set"), "test": ("validation.csv", "val_set")}
#: ExpW has no splits: a seeded share of its photos (all faces of a photo together) is ``test``.
EXPW_TEST_FRACTION = 0.1


def _affectnet_splits(root: Path) -> list[str]:
    return list(_AFFECTNET_SPLITS)


def _keep_classes(codes: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """AffectNet codes → (kept mask, canonical labels of the kept rows, class names)."""
    if classes not in (7, 8):
        raise ValueError(f"AffectNet classes must be 7 or 8, not {classes!r}")
    names = L.EMOTIONS_8[:classes]
    known = {code: names.index(name) for code, name in L.AFFECTNET_IDS.items() if name in names}
    keep = np.isin(codes, list(known))
    return keep, np.array([known[c] for c in codes[keep]], dtype=np.int64), names


def _valence_arousal(values: np.ndarray) -> np.ndarray:
    """(n, 2) valence and arousal as float32; AffectNet's -2 ("not annotated") becomes NaN."""
    values = np.asarray(values, dtype=np.float32)
    return np.where(values < -1, np.nan, values).astype(np.float32)


@register_dataset("affectnet", _affectnet_splits)
def scan_affectnet(root: Path, split: str, classes: int = 8, margin: float = 0.0, square: bool = True,
                   align: bool = False) -> Listing:
    """AffectNet: ``Manually_Annotated_file_lists/*.csv`` + boxes, or per-image ``*_exp.npy`` files.

    Parameters
    ----------
    classes : 7 or 8
        AffectNet-8, or AffectNet-7 without contempt. Codes 8-10 (none, uncertain, no-face) are
        always dropped and counted in ``Listing.dropped``; so is contempt for 7 classes.
    margin, square, align
        How each face is cut (:class:`emolib.boxes.Crops`); ``align`` levels the eye line from the
        landmarks.
    """
    if split not in _AFFECTNET_SPLITS:
        raise ValueError(f"AffectNet splits are {list(_AFFECTNET_SPLITS)}, not {split!r}")
    csv_name, folder = _AFFECTNET_SPLITS[split]
    csv = root / "Manually_Annotated_file_lists" / csv_name
    if csv.is_file():
        return _affectnet_csv(root, csv, classes, margin, square, align)
    return _affectnet_per_image(require_dir(root / folder, "AffectNet split folder (or "
                                             f"{csv})"), classes, margin, square, align)


#: The columns of AffectNet's CSV release that emolib reads (``facial_landmarks`` too with ``align``).
AFFECTNET_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression",
                     "valence", "arousal")


def _affectnet_csv(root: Path, csv: Path, classes: int, margin: float, square: bool, align: bool) -> Listing:
    image_dir = require_dir(root / "Manually_Annotated_Images", "AffectNet image folder")
    table = read_table(csv, f"the columns {','.join(AFFECTNET_COLUMNS)}",
                       usecols=None if align else lambda c: c.strip() != "facial_landmarks")
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in (*AFFECTNET_COLUMNS, *(("facial_landmarks",) if align else ())) if c not in table]
    if missing:
        raise ValueError(f"{csv} lacks column(s) {missing} (expected {','.join(AFFECTNET_COLUMNS)})")
    paths = image_names(table["subDirectory_filePath"], csv, 2)
    codes = numbers(table, ["expression"], csv, "an expression code 0..10", 2, minimum=0, whole=True)
    boxes = numbers(table, ["face_x", "face_y", "face_width", "face_height"], csv,
                    "a face box of 4 numbers (face_x, face_y, face_width, face_height)", 2)
    va = numbers(table, ["valence", "arousal"], csv, "valence and arousal numbers (-2: not annotated)", 2)
    keep, labels, names = _keep_classes(codes[:, 0].astype(np.int64), classes)
    table, boxes, va = table[keep], boxes[keep].astype(np.float32), va[keep]
    eyes = None
    if align:
        eyes = np.full((len(table), 4), np.nan, dtype=np.float32)
        for i, text in enumerate(table["facial_landmarks"]):
            points = np.array(str(text).split(";"), dtype=np.float32) if isinstance(text, str) else []
            if len(points) == 136:
                eyes[i] = eye_centres(points.reshape(1, 68, 2))[0]
    return Listing([str(image_dir / p) for p, k in zip(paths, keep) if k], labels, names,
                   crops=Crops(boxes, eyes, margin, square, align), valence_arousal=_valence_arousal(va),
                   dropped=int((~keep).sum()))


def _npy_value(path: Path) -> np.ndarray:
    """An annotation file's values as floats (the release stores them as strings); a clear error
    naming it when it is missing or holds no number."""
    try:
        values = np.asarray(np.load(path), dtype=np.float64).ravel()
    except (OSError, ValueError) as error:  # missing, not .npy, pickled, not a number
        reason = (error.strerror if isinstance(error, OSError) and error.strerror
                  else str(error).split(". ")[0])
        raise ValueError(f"{path}: cannot read this annotation ({reason}); every image of images/ needs "
                         "<name>_exp.npy, _val.npy and _aro.npy holding a number") from None
    if not values.size:
        raise ValueError(f"{path}: an empty annotation; it should hold a number")
    return values


def _affectnet_per_image(folder: Path, classes: int, margin: float, square: bool, align: bool) -> Listing:
    images = image_files(require_dir(folder / "images", "AffectNet images folder"))
    notes = require_dir(folder / "annotations", "AffectNet annotations folder")
    codes = np.array([int(_npy_value(notes / f"{p.stem}_exp.npy")[0]) for p in images], dtype=np.int64)
    keep, labels, names = _keep_classes(codes, classes)
    kept = [p for p, k in zip(images, keep) if k]
    va = [[_npy_value(notes / f"{p.stem}_{part}.npy")[0] for part in ("val", "aro")] for p in kept]
    eyes = None
    if align:
        eyes = eye_centres(np.array([_npy_value(notes / f"{p.stem}_lnd.npy").reshape(68, 2) for p in kept]))
    boxes = np.full((len(kept), 4), np.nan, dtype=np.float32)  # the image is the face
    return Listing([str(p) for p in kept], labels, names, crops=Crops(boxes, eyes, margin, square, align),
                   valence_arousal=_valence_arousal(np.reshape(va, (-1, 2))), dropped=int((~keep).sum()))


def _expw_splits(root: Path) -> list[str]:
    return ["train", "test"]


def _first_existing(*candidates: Path) -> Path:
    return next((p for p in candidates if p.exists()), candidates[0])


@register_dataset("expw", _expw_splits)
def scan_expw(root: Path, split: str, margin: float = 0.0, square: bool = True,
              test_fraction: float = EXPW_TEST_FRACTION, seed: int = 0) -> Listing:
    """ExpW: ``label.lst`` (``image face_id top left right bottom confidence expression``) + ``origin/``.

    ExpW has no splits: ``test`` is a seeded ``test_fraction`` of its photos (every face of a photo
    in the same split), ``train`` the rest.
    """
    if split not in ("train", "test"):
        raise ValueError(f"ExpW splits are train and test, not {split!r}")
    label_file = _first_existing(root / "label.lst", root / "label" / "label.lst")
    if not label_file.is_file():
        raise FileNotFoundError(f"ExpW label file not found: {label_file}")
    image_dir = require_dir(_first_existing(root / "origin", root / "image" / "origin"),
                             "ExpW origin folder")
    rows = []
    for number, line in enumerate(read_text(label_file).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            name, face, top, left, right, bottom, _, code = line.split()
            rows.append((name, int(face), float(left), float(top), float(right) - float(left),
                         float(bottom) - float(top), L.EXPW_IDS[int(code)], number))
        except (ValueError, KeyError):
            raise ValueError(f"{label_file}:{number}: cannot read {line!r} (expected 'image face_id top "
                             "left right bottom confidence expression', expression 0..6)") from None
    check_unique(((face_source(row[0], row[1]), row[7]) for row in rows), label_file, "face")
    photos = sorted({row[0] for row in rows})
    order = np.random.default_rng(seed).permutation(len(photos))
    test = {photos[i] for i in order[:int(round(len(photos) * test_fraction))]}
    rows = [row for row in rows if (row[0] in test) == (split == "test")]
    index = {name: i for i, name in enumerate(L.EMOTIONS_7)}
    return Listing([face_source(str(image_dir / r[0]), r[1]) for r in rows],
                   np.array([index[r[6]] for r in rows], dtype=np.int64), L.EMOTIONS_7,
                   crops=Crops(np.array([r[2:6] for r in rows], dtype=np.float32).reshape(-1, 4),
                               margin=margin, square=square))

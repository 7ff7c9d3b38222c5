"""What a dataset format is, and the readers the formats share.

A *format* is a function ``scan(root, split, **options) -> Listing`` registered with
:func:`register_dataset` (the one registry of dataset formats; :mod:`emolib.data` holds the built-in
ones, :mod:`emolib.photo_datasets` those whose faces are boxes in photos). The readers turn a format's
files into clear errors naming the file and line: label text and CSV tables, image listings, image
files (header checked before any pixel is decoded) and the face crops of a box file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emolib import imageio
from emolib.boxes import Crops, source_file
from emolib.registry import Registry, first_doc_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class Listing:
    """What a format found in one split: sources (file paths or csv rows) and their labels.

    ``pixels`` holds already-decoded images for formats that store pixels in a table (fer2013.csv).
    ``soft_labels`` holds per-class label distributions where the format has them (FER+ votes).
    ``dropped`` counts rows the format discarded on purpose (FER+ unknown / not-a-face).
    ``crops`` holds face boxes where the faces are cut from larger photos (:mod:`emolib.boxes`).
    ``valence_arousal`` holds (n, 2) float targets in [-1, 1] where the format has them (NaN: none).
    ``problems`` maps rows found unreadable while scanning (a bad fer2013.csv pixel row) to why:
    :func:`emolib.data.load_split` skips them, with that reason.
    """

    sources: list[str]
    labels: np.ndarray
    classes: tuple[str, ...]
    pixels: list[np.ndarray] | None = None
    soft_labels: np.ndarray | None = None
    dropped: int = 0
    crops: Crops | None = None
    valence_arousal: np.ndarray | None = None
    problems: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetFormat:
    """A registered dataset format: ``scan(root, split, **options) -> Listing`` and its split names."""

    name: str
    scan: Callable[..., Listing]
    splits: Callable[[Path], list[str]]
    description: str


DATASETS: Registry = Registry("dataset")


def register_dataset(name: str, splits: Callable[[Path], list[str]]):
    """Decorator: register ``scan(root, split, **options)`` as dataset format ``name``."""
    return DATASETS.register(name, lambda scan: DatasetFormat(name, scan, splits, first_doc_line(scan)))


# ---------------------------------------------------------------------------------------------------
# Label files and folders
# ---------------------------------------------------------------------------------------------------

def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` (suffix in :data:`IMAGE_SUFFIXES`), sorted; not its sub-folders."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def require_dir(path: Path, what: str) -> Path:
    """``path`` when it is a folder, else a FileNotFoundError naming ``what``."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def read_text(path: Path) -> str:
    """A label file's text; a clear error naming it when it is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
                         f"{error.start}): save it as UTF-8") from None


def read_table(path: Path, expected: str, **options):
    """A CSV label file as a pandas table (``options`` for ``pandas.read_csv``); a clear error naming
    it, and what it should hold (``expected``), when it cannot be read as CSV."""
    import pandas as pd

    try:
        return pd.read_csv(path, encoding="utf-8", **options)
    except UnicodeDecodeError:
        read_text(path)  # raises the not-UTF-8 error
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        reason = str(error).strip().replace("Error tokenizing data. C error: ", "")
        raise ValueError(f"{path}: cannot read it as CSV ({reason}); expected {expected}") from None


def numbers(table, columns, path: Path, expected: str, first_line: int, minimum: float = -np.inf,
            whole: bool = False) -> np.ndarray:
    """Columns ``columns`` (names, or a slice of positions) of ``table`` as a float array; a clear
    error naming ``path`` and the line (``first_line``: the file line of the table's first row) of the
    first value that is missing, not a number (a ``whole`` number), or below ``minimum``."""
    import pandas as pd

    part = table[list(columns)] if not isinstance(columns, slice) else table.iloc[:, columns]
    values = part.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < minimum)
    if whole:
        bad |= np.isfinite(values) & (values != np.round(values))
    rows = np.flatnonzero(bad.any(axis=1))
    if len(rows):
        row = rows[0]
        found = ",".join("" if pd.isna(v) else str(v) for v in part.iloc[row])
        raise ValueError(f"{path}:{first_line + row}: cannot read {found!r}: expected {expected}")
    return values


def check_unique(named_lines, path: Path, what: str = "image") -> None:
    """A clear error naming ``path`` when one name of ``named_lines`` (``(name, line)`` pairs) is listed
    twice: its face would count twice, perhaps with two labels."""
    seen: dict[str, int] = {}
    for name, line in named_lines:
        if name in seen:
            raise ValueError(f"{path}: {what} {name} is listed twice (lines {seen[name]} and {line}): "
                             f"keep one line per {what}")
        seen[name] = line


def image_names(values, path: Path, first_line: int) -> list[str]:
    """The image names of a label table's column ``values`` (a pandas Series): a clear error at the
    first empty one, or at a name listed twice."""
    import pandas as pd

    names = []
    for row, value in enumerate(values):
        if pd.isna(value) or not str(value).strip():
            raise ValueError(f"{path}:{first_line + row}: no image name: every line names its image")
        names.append(str(value))
    check_unique(zip(names, range(first_line, first_line + len(names))), path)
    return names


# ---------------------------------------------------------------------------------------------------
# Images and face crops
# ---------------------------------------------------------------------------------------------------

def read_image(source: str, channels: int) -> np.ndarray:
    """Read one image file as decoded by OpenCV (gray for 1 channel, else BGR).

    Its header is checked first (:func:`emolib.imageio.check_header`: a photo format, at most
    :data:`emolib.imageio.DEFAULT_MAX_PIXELS`), so a decompression bomb is refused before any pixel is
    decoded.

    Raises
    ------
    emolib.imageio.ImageError (a ValueError)
        Empty, not an image, too large, corrupt or truncated; the message says which.
    OSError
        Missing or unreadable.
    """
    data = imageio.read_image_file(source)
    imageio.check_header(data)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8),
                             cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR)
    except cv2.error as error:
        raise imageio.CorruptImageError(f"OpenCV cannot decode it: {error.err}") from None
    if image is None:
        raise imageio.CorruptImageError("corrupt or truncated image: OpenCV cannot decode it")
    return image


def fit_image(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """An image as :func:`read_image` gives it → (size, size, channels) uint8 (RGB for 3 channels)."""
    if channels == 3 and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[:2] != (size, size):
        shrink = image.shape[0] > size
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return image.reshape(size, size, channels)


def read_box_file(path, root, sources: list[str], margin: float = 0.0, square: bool = True) -> Crops:
    """:class:`Crops` for ``sources`` from a CSV box file with columns ``path, x, y, w, h`` (paths relative
    to ``root``); a source without a row is cropped whole."""
    table = read_table(Path(path), "the columns path,x,y,w,h")
    missing = {"path", "x", "y", "w", "h"} - set(table.columns)
    if missing:
        raise ValueError(f"{path} lacks column(s) {sorted(missing)} (expected path,x,y,w,h)")
    values = table[["x", "y", "w", "h"]].to_numpy()
    found = {str(Path(root) / p): row for p, row in zip(table["path"], values)}
    boxes = np.array([found.get(s, [np.nan] * 4) for s in sources], dtype=np.float32).reshape(-1, 4)
    return Crops(boxes, margin=margin, square=square)


def decode_crop(source: str, crops: Crops, row: int, size: int, channels: int) -> np.ndarray:
    """Read the photo of ``source`` and cut row ``row``'s face → (size, size, channels) uint8.

    Raises what :func:`read_image` raises, and ``ValueError`` when the box is empty or
    outside the photo."""
    image = read_image(source_file(source), channels)
    face = crops.cut(image, row, size)
    if face is None:
        x, y, w, h = (float(v) for v in crops.boxes[row])
        raise ValueError(f"its face box (x {x:g}, y {y:g}, w {w:g}, h {h:g}) is empty or outside the "
                         f"{image.shape[1]}×{image.shape[0]} photo")
    return fit_image(face, size, channels)

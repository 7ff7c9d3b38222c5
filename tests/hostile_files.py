"""Hostile inputs for the dataset and video readers, made at run time (nothing binary is committed).

A :class:`Case` is one hostile file and the outcome a reader owes it:

- ``"skip"``: the file is left out of its split and listed in ``Split.skipped`` with a reason; the
  other files load, with their labels;
- ``"error"``: a ``ValueError`` or ``OSError`` whose message names the file;
- ``"ok"``: read correctly (a PNG named ``.jpg``, a variable-frame-rate video …).

:data:`IMAGE_CASES` are image files, written into every layout of :data:`LAYOUTS` that holds image
files (:func:`image_cases` adds a permission-denied image and a non-UTF-8 name); :data:`TABLE_CASES`
are label-file and table cases per layout; :func:`run` loads one case and :func:`outcome` says what
happened. :data:`VIDEO_CASES` are videos (generated with ffmpeg), judged by :func:`video_outcome`.
Used by tests/test_hostile_data.py, tests/test_hostile_video.py and bench/hostile_files.py.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emolib import labels as L

#: Gray values of the good faces written beside the hostile ones: a face's label can be read back
#: from its pixels (``GOOD_VALUES[label]``), so a mislabelled face is caught.
GOOD_VALUES = (20, 50, 80, 110, 140, 170, 200, 230)


@dataclass(frozen=True)
class Case:
    """One hostile input: ``name``, the file ``suffix``, ``make() -> bytes``, the owed ``outcome``."""

    name: str
    suffix: str
    make: Callable[[], bytes]
    outcome: str


# --- images ----------------------------------------------------------------------------------------

def face_png(value: int = 128, size: int = 48) -> bytes:
    """A gray PNG face whose pixels all equal ``value``."""
    return cv2.imencode(".png", np.full((size, size), value, dtype=np.uint8))[1].tobytes()


def face_jpeg(size: int = 160) -> bytes:
    """A textured JPEG (texture so that truncating it cuts image data, not padding)."""
    pixels = np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)
    return cv2.imencode(".jpg", pixels)[1].tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=4)
def bomb_png(width: int, height: int, rows_per_step: int = 256) -> bytes:
    """A *valid* all-black gray PNG of ``width`` × ``height``: a few hundred kB that decode to
    ``width * height`` bytes (8000 × 8000: 64 MB from ~60 kB)."""
    packer = zlib.compressobj(9)
    block = b"\0" * ((width + 1) * rows_per_step)  # each row: filter byte 0, then its pixels
    parts = [packer.compress(block) for _ in range(height // rows_per_step)]
    parts += [packer.compress(b"\0" * ((width + 1) * (height % rows_per_step))), packer.flush()]
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


def header_bomb_png(width: int, height: int) -> bytes:
    """A PNG header that claims ``width`` × ``height`` pixels, followed by almost no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


def header_bomb_jpeg(width: int = 65000, height: int = 65000) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to claim ``width`` × ``height`` pixels."""
    data = bytearray(face_jpeg(64))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _cut(data: bytes, share: float) -> bytes:
    return data[:int(len(data) * share)]


IMAGE_CASES: tuple[Case, ...] = (
    Case("zero-byte file", ".png", lambda: b"", "skip"),
    Case("truncated PNG", ".png", lambda: _cut(face_png(90), 0.5), "skip"),
    Case("truncated JPEG", ".jpg", lambda: _cut(face_jpeg(), 0.6), "skip"),
    Case("JPEG without its last 2 bytes", ".jpg", lambda: face_jpeg()[:-2], "skip"),
    Case("text named .png", ".png", lambda: b"these are my notes, not a face\n" * 20, "skip"),
    Case("PDF named .jpg", ".jpg", lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "skip"),
    Case("ZIP named .jpeg", ".jpeg", lambda: b"PK\x03\x04" + b"\0" * 60, "skip"),
    Case("HTML error page named .jpg", ".jpg", lambda: b"<!DOCTYPE html><body>403</body>", "skip"),
    Case("bomb PNG 8000x8000 (64 MP from 60 kB)", ".png", lambda: bomb_png(8000, 8000), "skip"),
    Case("header-only bomb PNG 30000x30000", ".png", lambda: header_bomb_png(30000, 30000), "skip"),
    Case("header-only bomb JPEG 65000x65000", ".jpg", header_bomb_jpeg, "skip"),
    Case("PNG named .jpg", ".jpg", lambda: face_png(GOOD_VALUES[0]), "ok"),
)


# --- layouts: good faces, with hostile files or label rows among them -----------------------------
# In every layout the good face of class (or label code) i has gray value GOOD_VALUES[i], and a hostile
# image is listed with code 0, so a face whose value does not match its label is a wrong label.

def write_folders(root: Path, files: dict[str, bytes], classes: tuple[str, ...] = ("happy", "sad")) -> Path:
    """``root/train/<class>/good*.png`` and ``files`` in the first class folder; that folder."""
    for i, name in enumerate(classes):
        folder = root / "train" / name
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(2):
            (folder / f"good{k}.png").write_bytes(face_png(GOOD_VALUES[i]))
    for name, data in files.items():
        (root / "train" / classes[0] / name).write_bytes(data)
    return root / "train" / classes[0]


def vote_line(name: str, column: int) -> str:
    """A FER+ label.csv line giving all 10 votes to vote column ``column``."""
    votes = ["0"] * 10
    votes[column] = "10"
    return f'{name},"(0, 0, 48, 48)",{",".join(votes)}'


def write_ferplus(root: Path, files: dict[str, bytes] = {}, lines: tuple[str, ...] = (),  # noqa: B006
                  replace: str | None = None) -> Path:
    """``root/FER2013Train``: good faces of vote columns 0-2, ``files``, and label.csv (their lines plus
    ``lines``, or ``replace`` as the whole file); the label file."""
    folder = root / "FER2013Train"
    folder.mkdir(parents=True, exist_ok=True)
    good = []
    for column in range(3):
        name = f"fer{column:07d}.png"
        (folder / name).write_bytes(face_png(GOOD_VALUES[column]))
        good.append(vote_line(name, column))
    for name, data in files.items():
        (folder / name).write_bytes(data)
    label_file = folder / "label.csv"
    label_file.write_text(replace if replace is not None else "\n".join([*good, *lines]) + "\n",
                          errors="surrogateescape")
    return label_file


def fer2013_row(emotion, value: int = 100, count: int = 2304, usage: str = "Training") -> str:
    """A fer2013.csv row of ``count`` pixels of ``value``."""
    return f"{emotion},{' '.join([str(value)] * count)},{usage}"


def write_fer2013_csv(root: Path, rows: tuple[str, ...] = (), replace: str | None = None) -> Path:
    """``root/fer2013.csv``: a good Training row per emotion id 0-6, then ``rows`` (or ``replace``)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["emotion,pixels,Usage", *(fer2013_row(i, GOOD_VALUES[i]) for i in range(7))]
    path = root / "fer2013.csv"
    path.write_text(replace if replace is not None else "\n".join([*lines, *rows]) + "\n")
    return path


AFFECTNET_HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
                    "expression,valence,arousal")


def affectnet_row(name: str, code: int = 0, box: str = "0,0,48,48") -> str:
    """A training.csv row for photo ``1/<name>``."""
    return f"1/{name},{box},,{code},0.1,0.2"


def write_affectnet(root: Path, files: dict[str, bytes] = {}, rows: tuple[str, ...] = (),  # noqa: B006
                    replace: str | None = None) -> Path:
    """An AffectNet CSV release: a good 48x48 photo per code 0-7, ``files``, and training.csv (their rows
    plus ``rows``, or ``replace``); the CSV."""
    images = root / "Manually_Annotated_Images" / "1"
    images.mkdir(parents=True, exist_ok=True)
    (root / "Manually_Annotated_file_lists").mkdir(exist_ok=True)
    good = []
    for code in range(8):
        (images / f"{code}.png").write_bytes(face_png(GOOD_VALUES[code]))
        good.append(affectnet_row(f"{code}.png", code))
    for name, data in files.items():
        (images / name).write_bytes(data)
    csv = root / "Manually_Annotated_file_lists" / "training.csv"
    csv.write_text(replace if replace is not None else "\n".join([AFFECTNET_HEADER, *good, *rows]) + "\n",
                   errors="surrogateescape")
    return csv


def write_affectnet_per_image(root: Path, files: dict[str, bytes] = {}) -> Path:  # noqa: B006
    """An AffectNet per-image release (``train_set/images`` + ``annotations/*.npy`` as strings): good
    faces of codes 0-3 and ``files`` (code 0); the annotations folder."""
    folder = root / "train_set"
    for sub in ("images", "annotations"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    photos = {f"{code}.png": (face_png(GOOD_VALUES[code]), code) for code in range(4)}
    photos.update({name: (data, 0) for name, data in files.items()})
    for name, (data, code) in photos.items():
        (folder / "images" / name).write_bytes(data)
        stem = Path(name).stem
        for part, value in (("exp", str(code)), ("val", "0.25"), ("aro", "-0.5")):
            np.save(folder / "annotations" / f"{stem}_{part}.npy", np.array(value))
    return folder / "annotations"


def expw_line(name: str, code: int = 0, face: int = 0, box: str = "0 0 48 48") -> str:
    """A label.lst line (``image face_id top left right bottom confidence expression``)."""
    return f"{name} {face} {box} 0.9 {code}"


def write_expw(root: Path, files: dict[str, bytes] = {}, lines: tuple[str, ...] = ()) -> Path:  # noqa: B006
    """An ExpW release: ``origin/p<code>.png`` (a 48x48 face) per code 0-6, ``files``, and label.lst
    (their lines plus ``lines``); the label file."""
    (root / "origin").mkdir(parents=True, exist_ok=True)
    good = []
    for code in range(7):
        (root / "origin" / f"p{code}.png").write_bytes(face_png(GOOD_VALUES[code]))
        good.append(expw_line(f"p{code}.png", code))
    for name, data in files.items():
        (root / "origin" / name).write_bytes(data)
    label_file = root / "label.lst"
    label_file.write_text("\n".join([*good, *lines]) + "\n", errors="surrogateescape")
    return label_file


def _by_code(names: dict[int, str]) -> dict[str, int]:
    return {name: GOOD_VALUES[code] for code, name in names.items()}


@dataclass(frozen=True)
class Layout:
    """A dataset layout that can hold a hostile image: ``write(root, name, data)`` makes the dataset with
    the image listed under code 0 and returns the image's path; ``values`` maps each class to the gray
    value of its good faces."""

    reader: str
    dataset: str
    write: Callable[[Path, str, bytes], Path] | None
    values: dict[str, int]
    good: int
    options: dict = field(default_factory=dict)


def _in_ferplus(root, name, data):
    return write_ferplus(root, {name: data}, [vote_line(name, 0)]).parent / name


def _in_affectnet(root, name, data):
    csv = write_affectnet(root, {name: data}, [affectnet_row(name)])
    return csv.parents[1] / "Manually_Annotated_Images" / "1" / name


def _in_expw(root, name, data):
    return write_expw(root, {name: data}, [expw_line(name)]).parent / "origin" / name


LAYOUTS: tuple[Layout, ...] = (
    Layout("folders", "folders", lambda root, name, data: write_folders(root, {name: data}) / name,
           {"happy": GOOD_VALUES[0], "sad": GOOD_VALUES[1]}, 4),
    Layout("fer2013 (folders)", "fer2013",
           lambda root, name, data: write_folders(root, {name: data}, L.EMOTIONS_7) / name,
           {name: GOOD_VALUES[i] for i, name in enumerate(L.EMOTIONS_7)}, 14),
    Layout("ferplus", "ferplus", _in_ferplus,
           {L.canonical(c): GOOD_VALUES[i] for i, c in enumerate(L.FERPLUS_VOTE_COLUMNS[:8])}, 3),
    Layout("affectnet (csv)", "affectnet", _in_affectnet, _by_code(L.AFFECTNET_IDS), 8),
    Layout("affectnet (per image)", "affectnet",
           lambda root, name, data: write_affectnet_per_image(root, {name: data}).parent / "images" / name,
           _by_code(L.AFFECTNET_IDS), 4),
    Layout("expw", "expw", _in_expw, _by_code(L.EXPW_IDS), 7, {"test_fraction": 0.0}),
    Layout("fer2013 (csv)", "fer2013", None, _by_code(L.FER2013_IDS), 7),  # no image files: table cases only
)
READERS = {layout.reader: layout for layout in LAYOUTS}


def wrong_labels(split, values: dict[str, int]) -> list[str]:
    """The sources of ``split`` whose face's gray value is not the one of its label's class."""
    wrong = []
    for start in range(0, len(split), 64):
        means = np.asarray(split.images[start:start + 64], dtype=np.float64).mean(axis=(1, 2, 3))
        for offset, mean in enumerate(means):
            row = start + offset
            if abs(mean - values[split.classes[split.labels[row]]]) > 2:
                wrong.append(split.sources[row])
    return wrong


#: Label-file and table cases per dataset layout: (reader, case name, write(root) -> the file the
#: message must name, owed outcome, load options).
def _ferplus(*lines, files=None, replace=None):
    return lambda root: write_ferplus(root, files or {}, lines, replace)


def _fer2013(*rows, replace=None):
    return lambda root: write_fer2013_csv(root, rows, replace)


def _affectnet(*rows, files=None, replace=None):
    return lambda root: write_affectnet(root, files or {}, rows, replace)


def _expw(*lines, files=None):
    return lambda root: write_expw(root, files or {}, lines)


def _per_image(broken: str):
    def write(root):
        notes = write_affectnet_per_image(root)
        target = notes / "0_exp.npy"
        if broken == "missing":
            target.unlink()
        elif broken == "text":
            np.save(target, np.array("happy"))
        else:
            target.write_bytes(b"3\n")
        return target
    return write


def _fifo_in_ferplus(root: Path) -> Path:
    """A FER+ label.csv line naming a FIFO (reading it would block forever)."""
    label_file = write_ferplus(root, {}, [vote_line("pipe.png", 2)])
    os.mkfifo(label_file.parent / "pipe.png")
    return label_file


def _unknown_folder(classes):
    def write(root):
        write_folders(root, {}, classes)
        (root / "train" / "bored").mkdir()
        return root / "train" / "bored"
    return write


_PIXELS = " ".join(["100"] * 2303)
_NINE = {"9.png": face_png(GOOD_VALUES[3])}

TABLE_CASES: tuple[tuple, ...] = (
    ("folders", "unknown class folder 'bored'", _unknown_folder(("happy", "sad")), "error"),
    ("fer2013 (folders)", "unknown class folder 'bored'", _unknown_folder(L.EMOTIONS_7), "error"),
    ("ferplus", "row of 11 columns (a vote missing)", _ferplus('x.png,"(0, 0, 48, 48)",1,2,3,4,0,0,0,0,0'),
     "error"),
    ("ferplus", "row of 13 columns (a vote too many)", _ferplus(vote_line("fer0000005.png", 0) + ",5"),
     "error"),
    ("ferplus", "every row of 13 columns", _ferplus(replace=vote_line("fer0000000.png", 0) + ",5\n"),
     "error"),
    ("ferplus", "non-numeric vote", _ferplus('fer0000009.png,"(0, 0, 48, 48)",4,x,0,1,3,2,0,0,0,0'), "error"),
    ("ferplus", "empty vote", _ferplus('fer0000009.png,"(0, 0, 48, 48)",4,,0,1,3,2,0,0,0,0'), "error"),
    ("ferplus", "fractional vote", _ferplus('fer0000009.png,"(0, 0, 48, 48)",4.5,0,0,1,3,2,0,0,0,0'),
     "error"),
    ("ferplus", "negative vote", _ferplus('fer0000009.png,"(0, 0, 48, 48)",-4,0,0,1,3,2,0,0,0,0'), "error"),
    ("ferplus", "a header line", _ferplus(replace="Image name,Face box,neutral,happiness,surprise,sadness,"
                                          "anger,disgust,fear,contempt,unknown,NF\n"
                                          + vote_line("fer0000000.png", 0) + "\n"), "error"),
    ("ferplus", "duplicate image name, other votes", _ferplus(vote_line("fer0000000.png", 3)), "error"),
    ("ferplus", "duplicate image name, same votes", _ferplus(vote_line("fer0000001.png", 1)), "error"),
    ("ferplus", "row without an image name", _ferplus(vote_line("", 2)), "error"),
    ("ferplus", "zero-byte label.csv", _ferplus(replace=""), "error"),
    ("ferplus", "binary label.csv", _ferplus(replace="\x00\x01\x02PNG\x00\x7f"), "error"),
    ("ferplus", "listed image missing on disk", _ferplus(vote_line("fer0000042.png", 2)), "skip"),
    ("ferplus", "listed image is a FIFO (a read would block)", _fifo_in_ferplus, "skip"),
    ("fer2013 (csv)", "row of 1000 pixels (not a square)", _fer2013(fer2013_row(3, count=1000)), "skip"),
    ("fer2013 (csv)", "row of 2116 pixels (46x46, not 48x48)", _fer2013(fer2013_row(3, count=2116)), "skip"),
    ("fer2013 (csv)", "non-numeric pixel", _fer2013(f"3,{_PIXELS} abc,Training"), "skip"),
    ("fer2013 (csv)", "pixel value 300", _fer2013(f"3,{_PIXELS} 300,Training"), "skip"),
    ("fer2013 (csv)", "negative pixel value", _fer2013(f"3,{_PIXELS} -10,Training"), "skip"),
    ("fer2013 (csv)", "fractional pixel value", _fer2013(f"3,{_PIXELS} 1.5,Training"), "skip"),
    ("fer2013 (csv)", "empty pixels", _fer2013("3,,Training"), "skip"),
    ("fer2013 (csv)", "unknown emotion id 9", _fer2013(fer2013_row(9)), "error"),
    ("fer2013 (csv)", "emotion 'happy', not an id", _fer2013(fer2013_row("happy")), "error"),
    ("fer2013 (csv)", "unknown Usage 'Validation'", _fer2013(fer2013_row(3, usage="Validation")), "error"),
    ("fer2013 (csv)", "empty Usage", _fer2013(fer2013_row(3, usage="")), "error"),
    ("fer2013 (csv)", "no pixels column", _fer2013(replace="emotion,Usage\n3,Training\n"), "error"),
    ("fer2013 (csv)", "zero-byte fer2013.csv", _fer2013(replace=""), "error"),
    ("affectnet (csv)", "no expression column",
     _affectnet(replace=AFFECTNET_HEADER.replace(",expression", "") + "\n1/0.png,0,0,48,48,,0.1,0.2\n"),
     "error"),
    ("affectnet (csv)", "non-numeric expression", _affectnet("1/9.png,0,0,48,48,,happy,0.1,0.2", files=_NINE),
     "error"),
    ("affectnet (csv)", "non-numeric face box",
     _affectnet(affectnet_row("9.png", 3, "0,zero,48,48"), files=_NINE), "error"),
    ("affectnet (csv)", "empty face box", _affectnet(affectnet_row("9.png", 3, ",,,"), files=_NINE), "error"),
    ("affectnet (csv)", "row without a file path", _affectnet(",0,0,48,48,,3,0.1,0.2"), "error"),
    ("affectnet (csv)", "duplicate file path", _affectnet(affectnet_row("3.png", 4)), "error"),
    ("affectnet (csv)", "box outside the photo",
     _affectnet(affectnet_row("9.png", 3, "500,500,40,40"), files=_NINE), "skip"),
    ("affectnet (csv)", "listed photo missing on disk", _affectnet(affectnet_row("missing.png", 3)), "skip"),
    ("affectnet (per image)", "annotation file missing", _per_image("missing"), "error"),
    ("affectnet (per image)", "non-numeric annotation", _per_image("text"), "error"),
    ("affectnet (per image)", "annotation not a .npy file", _per_image("not npy"), "error"),
    ("expw", "line of 7 fields", _expw("p0.png 1 0 0 48 48 3"), "error"),
    ("expw", "non-numeric box", _expw(expw_line("p0.png", 3, 1, "zero 0 48 48")), "error"),
    ("expw", "expression 9", _expw(expw_line("p0.png", 9, 1)), "error"),
    ("expw", "duplicate photo and face id", _expw(expw_line("p3.png", 4)), "error"),
    ("expw", "empty face box", _expw(expw_line("p0.png", 3, 1, "10 10 10 10")), "skip"),
    ("expw", "listed photo missing on disk", _expw(expw_line("nowhere.png", 3)), "skip"),
)


# --- videos ----------------------------------------------------------------------------------------

def ffmpeg() -> str:
    """The ffmpeg executable (``make browser`` installs it)."""
    path = shutil.which("ffmpeg")
    if not path:
        raise RuntimeError("ffmpeg is required for the hostile videos (make browser installs it)")
    return path


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg(), "-y", "-loglevel", "error", *args], check=True, timeout=120)


def clip(path: Path, photo: Path, size: str = "320x240", seconds: float = 1.0, rate: int = 10,
         filters: str = "", options: tuple[str, ...] = ()) -> Path:
    """A clip of ``photo`` (scaled to half the frame height) on gray, then ``filters``, in H.264."""
    height = int(size.split("x")[1])
    graph = f"[1]scale=-2:{height // 2 // 2 * 2}[face];[0][face]overlay=x=(W-w)/2:y=(H-h)/2,format=yuv420p"
    _ffmpeg("-f", "lavfi", "-i", f"color=c=gray:s={size}:r={rate}:d={seconds}", "-i", str(photo),
            "-filter_complex", graph + (f",{filters}" if filters else ""), "-c:v", "libx264", *options,
            str(path))
    return path


def audio_only(path: Path) -> Path:
    """An MP4 container holding one second of AAC audio and no video stream."""
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(path))
    return path


def zero_frames(path: Path) -> Path:
    """An MP4 whose video stream has no frame (``-frames:v 0``)."""
    _ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x120:r=10:d=1", "-frames:v", "0", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", str(path))
    return path


#: the frame times of :func:`variable_frame_rate`'s clip: 10 fps for 1 s, then 1.0 and 1.5 s
VFR_TIMES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5)


def variable_frame_rate(path: Path, photo: Path) -> Path:
    """An MKV whose frames come at uneven times (:data:`VFR_TIMES`)."""
    return clip(path, photo, seconds=2, filters="select='lt(t\\,1)+not(mod(n\\,5))'",
                options=("-fps_mode", "vfr"))


def truncated(source: Path, path: Path, share: float = 0.5) -> Path:
    """The first ``share`` of ``source``'s bytes."""
    data = source.read_bytes()
    path.write_bytes(data[:int(len(data) * share)])
    return path


@dataclass(frozen=True)
class VideoCase:
    """A hostile video: ``make(folder, photo) -> path``, the owed outcome (``"error"`` or ``"ok"``),
    and for ``"ok"`` the frames whose times the timeline must hold (one face each; ``None``: any)."""

    name: str
    make: Callable[[Path, Path], Path]
    outcome: str
    times: tuple[float, ...] | None = None
    says: str | None = None  # what stderr must say


def video_outcome(case: VideoCase, path: Path, out: Path, timeline=None, error: BaseException | None = None,
                  stderr: str = "") -> tuple[str, str]:
    """What a video reader did with ``case``'s ``path``, given the ``timeline`` it returned (and wrote to
    ``out``) or the ``error`` it raised: ``case.outcome`` when right — ``"error"`` (a ``ValueError`` /
    ``OSError`` naming the file, nothing written), ``"ok"`` (a face row at each of ``case.times``, the
    same rows in ``out``) — else ``"crash"``, ``"unclear error"``, ``"wrong"``."""
    import pandas as pd

    if error is not None:
        if not isinstance(error, ValueError | OSError):
            return "crash", f"{type(error).__name__}: {error}"
        if path.name not in str(error):
            return "unclear error", str(error)
        return ("error", str(error)) if not out.exists() else ("wrong", f"{out} written: {error}")
    written = pd.read_csv(out)
    times = sorted(timeline["time"].unique())
    if len(written) != len(timeline) or not len(timeline):
        return "wrong", f"{len(timeline)} rows returned, {len(written)} written"
    expected = case.times
    if expected is not None and (len(timeline) != len(expected) or len(times) != len(expected)
                                 or not np.allclose(times, expected, atol=0.01)):
        return "wrong", f"face rows at {times}, expected one at each of {list(expected)}"
    if case.says and case.says not in stderr:
        return "wrong", f"stderr does not say {case.says!r}: {stderr[-200:]!r}"
    return "ok", f"{len(timeline)} face rows, {times[0]:.2f}-{times[-1]:.2f} s"


def _cut_before_index(folder: Path, photo: Path) -> Path:
    return truncated(clip(folder / "whole.mp4", photo, seconds=2), folder / "cut.mp4")


def _cut_after_index(folder: Path, photo: Path) -> Path:
    whole = clip(folder / "whole-faststart.mp4", photo, seconds=4,  # a key frame every 4: cut mid-clip
                 options=("-movflags", "+faststart", "-g", "4", "-bf", "0"))
    return truncated(whole, folder / "cut-faststart.mp4", 0.6)


def _written(name: str, data: bytes):
    def make(folder: Path, photo: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name
    return make


VIDEO_CASES: tuple[VideoCase, ...] = (
    VideoCase("truncated MP4 (cut before its index)", _cut_before_index, "error"),
    VideoCase("truncated MP4, index first (faststart)", _cut_after_index, "ok", says="may be truncated"),
    VideoCase("zero-byte .mp4", _written("empty.mp4", b""), "error"),
    VideoCase("video stream of zero frames", lambda folder, photo: zero_frames(folder / "zero.mp4"), "error"),
    VideoCase("audio only, no video stream", lambda folder, photo: audio_only(folder / "audio.mp4"), "error"),
    VideoCase("variable frame rate", lambda folder, photo: variable_frame_rate(folder / "vfr.mkv", photo),
              "ok", VFR_TIMES),
    VideoCase("4K clip (3840x2160, 0.5 s)", lambda folder, photo: clip(folder / "4k.mp4", photo, "3840x2160",
                                                                        0.5, 4), "ok", (0.0, 0.25)),
    VideoCase("a PNG named .mp4", _written("photo.mp4", face_png(120, 96)), "error"),
    VideoCase("text named .mp4", _written("notes.mp4", b"meeting notes, not a video\n" * 50), "error"),
)


# --- running a case through its reader -------------------------------------------------------------

@contextlib.contextmanager
def unreadable(path: Path):
    """Make ``path`` unreadable for the block: ``chmod 000`` for a user who is not root; as root (who
    reads any file) a ``PermissionError`` from ``Path.read_bytes``, the one call emolib's image readers
    read a file with — a simulation, said so in the bench's table."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0)
        try:
            yield "chmod 000"
        finally:
            path.chmod(mode)
        return
    original, target = Path.read_bytes, str(path)

    def read_bytes(self):
        if str(self) == target:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)

    Path.read_bytes = read_bytes
    try:
        yield "simulated (root)"
    finally:
        Path.read_bytes = original


def load(reader: str, root: Path, cache: Path):
    """The train split of ``reader``'s layout at ``root`` (48x48 gray, cached in ``cache``)."""
    from emolib import data as D

    layout = READERS[reader]
    return D.load_split(layout.dataset, root, "train", 48, 1, cache=cache, workers=2, **layout.options)


def outcome(reader: str, root: Path, cache: Path, named: Path, owed: str) -> tuple[str, str]:
    """Load ``reader``'s layout at ``root``; ``(what happened, detail)``.

    What happened is ``owed`` when the reader did it right — ``"error"`` (a ``ValueError`` /
    ``OSError`` naming ``named``), ``"skip"`` (one file skipped with a reason, every good face kept
    with its label), ``"ok"`` (every face kept, labels right) — else ``"crash"`` (another exception),
    ``"unclear error"`` (the message does not name the file), ``"wrong label"``, ``"accepted"``
    (loaded without a word where an error is owed) or ``"lost"`` (faces missing or skipped unreported).
    """
    layout = READERS[reader]
    try:
        split = load(reader, root, cache)
    except (ValueError, OSError) as error:
        text = str(error)
        return ("error" if named.name in text else "unclear error"), text
    except Exception as error:  # what this campaign hunts: anything else is a crash
        return "crash", f"{type(error).__name__}: {error}"
    wrong = wrong_labels(split, layout.values)
    if wrong:
        return "wrong label", ", ".join(wrong)
    reasons = getattr(split, "skip_reasons", ["(no reason kept)"] * len(split.skipped))
    if len(split.skipped) == 1 and len(split) == layout.good and all(reasons):
        return "skip", f"{split.skipped[0]}: {reasons[0]}"
    if not split.skipped and len(split) == layout.good + (owed == "ok"):
        return ("ok" if owed == "ok" else "accepted"), f"{len(split)} faces"
    return "lost", f"{len(split)} faces of {layout.good}, skipped {split.skipped}"


def image_cases() -> list[tuple[str, str, Callable, str]]:
    """Every image case in every layout with image files: ``(reader, case name, write, owed)``, where
    ``write(root)`` makes the dataset and gives the hostile file and the context to load it in."""
    cases = []
    for layout in LAYOUTS:
        if layout.write is None:
            continue
        for case in IMAGE_CASES:
            def write(root, layout=layout, case=case):
                return layout.write(root, f"hostile{case.suffix}", case.make()), contextlib.nullcontext()
            cases.append((layout.reader, case.name, write, case.outcome))

        def locked(root, layout=layout):
            path = layout.write(root, "locked.png", face_png(GOOD_VALUES[0]))
            return path, unreadable(path)
        cases.append((layout.reader, "unreadable image (permission denied)", locked, "skip"))

        def odd_name(root, layout=layout):  # in a label file, the name makes the file itself not UTF-8
            name = os.fsdecode(b"caf\xe9-latin1.png")
            path = layout.write(root, name, face_png(GOOD_VALUES[0]))
            return (path if layout.reader in NAMED_IN_FOLDERS else _label_file(root, layout)), \
                contextlib.nullcontext()
        cases.append((layout.reader, "file name not UTF-8" if layout.reader in NAMED_IN_FOLDERS
                      else "label file not UTF-8 (a Latin-1 file name)", odd_name,
                      "ok" if layout.reader in NAMED_IN_FOLDERS else "error"))
    return cases


#: layouts whose image names come from the file system (not from a label file)
NAMED_IN_FOLDERS = ("folders", "fer2013 (folders)", "affectnet (per image)")


def _label_file(root: Path, layout: Layout) -> Path:
    return {"ferplus": root / "FER2013Train" / "label.csv", "expw": root / "label.lst",
            "affectnet (csv)": root / "Manually_Annotated_file_lists" / "training.csv"}[layout.reader]


def table_cases() -> list[tuple[str, str, Callable, str]]:
    """:data:`TABLE_CASES` in the form of :func:`image_cases`."""
    return [(reader, name, lambda root, write=write: (write(root), contextlib.nullcontext()), owed)
            for reader, name, write, owed in TABLE_CASES]


def run(reader: str, write, owed: str, root: Path, cache: Path) -> tuple[str, str]:
    """Make a case's dataset at ``root`` and :func:`outcome` of loading it."""
    named, context = write(root)
    with context:
        return outcome(reader, root, cache, named, owed)

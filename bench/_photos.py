"""Labelled test photos built at run time from the two public-domain portraits in ../shared/data/photos.

Each portrait holds one face. Its *true box* is the mean of the Haar and YuNet boxes found on the
untouched portrait (both detectors agree there: IoU > 0.6). Composites paste tiles of the portraits
(the face with context around it), scaled to chosen face sizes, sometimes mirrored, at known
positions on a textured canvas; the true boxes follow by the same scale and shift. Negatives
(canvases without any face) measure false detections.

Used by bench/detectors.py and bench/predict_latency.py; deterministic for a given seed.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from emolib.detect import box_iou

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOLIB_SHARED", REPO.parent / "shared")).resolve()
PHOTOS = ("astronaut_eileen_collins.png", "grace_hopper.jpg")
YUNET = SHARED / "models" / "face_detection_yunet_2023mar.onnx"


@dataclass
class LabelledImage:
    """An RGB image with its true face boxes ``(x, y, w, h)``."""

    name: str
    rgb: np.ndarray
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)

    def encode(self, fmt: str = "PNG", quality: int = 90) -> bytes:
        """The image as encoded bytes (``PNG`` or ``JPEG``), as a client would upload it."""
        buffer = io.BytesIO()
        Image.fromarray(self.rgb).save(buffer, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
        return buffer.getvalue()


def photo_path(name: str) -> Path:
    path = SHARED / "data" / "photos" / name
    if not path.is_file():
        raise SystemExit(f"missing {path}: set EMOLIB_SHARED to the shared data folder")
    return path


def source_photos() -> list[LabelledImage]:
    """The two portraits with their true boxes (mean of the Haar and YuNet boxes)."""
    from emolib import detect, imageio

    haar = detect.get_detector("haar")
    yunet = detect.get_detector("yunet", model_path=YUNET, max_side=None)
    out = []
    for name in PHOTOS:
        rgb = imageio.load_image(photo_path(name))
        found = [haar.detect(rgb), yunet.detect(rgb)]
        if any(len(faces) != 1 for faces in found):
            raise RuntimeError(f"expected one face per detector on {name}, got {[len(f) for f in found]}")
        a, b = (np.asarray(faces[0].box, dtype=float) for faces in found)
        if box_iou(a, b) < 0.6:
            raise RuntimeError(f"haar and yunet disagree on {name}: {a} vs {b}")
        out.append(LabelledImage(name, rgb, [tuple(int(round(v)) for v in (a + b) / 2)]))
    return out


def background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth coloured gradient with blurred noise: texture for the detectors, but no faces."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    colors = rng.uniform(40, 215, size=(3, 3))
    base = (colors[0] * (xx / width)[..., None] + colors[1] * (yy / height)[..., None]
            + colors[2] * (1 - xx / width)[..., None] * 0.5) / 1.5
    noise = cv2.GaussianBlur(rng.normal(0, 40, size=(height, width, 3)).astype(np.float32), (0, 0), 6)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def composite(sources: list[LabelledImage], n_faces: int, rng: np.random.Generator, *,
              size: tuple[int, int] = (720, 960), face_sizes: tuple[int, int] = (40, 200),
              context: float = 0.6, hard: bool = False, name: str = "composite") -> LabelledImage:
    """Paste ``n_faces`` face tiles of ``sources`` at known places and scales on one canvas.

    ``hard`` also rotates tiles (±30°), changes their brightness and contrast and adds noise; a
    rotated face's true box keeps its size and follows its centre.
    """
    height, width = size
    canvas = background(height, width, rng)
    placed: list[tuple[int, int, int, int]] = []  # tile rectangles already used
    boxes = []
    attempts = 0
    while len(boxes) < n_faces and attempts < 500:
        attempts += 1
        source = sources[int(rng.integers(len(sources)))]
        fx, fy, fw, fh = source.boxes[0]
        # the tile: the face and `context` of its size around it, inside the source photo
        sh, sw = source.rgb.shape[:2]
        tx0, ty0 = max(0, int(fx - context * fw)), max(0, int(fy - context * fh))
        tx1, ty1 = min(sw, int(fx + fw + context * fw)), min(sh, int(fy + fh + context * fh))
        target = float(rng.uniform(*face_sizes))
        scale = target / fw
        tile = source.rgb[ty0:ty1, tx0:tx1]
        tw, th = max(1, round(tile.shape[1] * scale)), max(1, round(tile.shape[0] * scale))
        if tw >= width or th >= height:
            continue
        tile = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        x, y = int(rng.integers(0, width - tw)), int(rng.integers(0, height - th))
        if any(_overlap((x, y, tw, th), other) for other in placed):
            continue
        box_x, box_y = (fx - tx0) * scale, (fy - ty0) * scale
        if rng.random() < 0.5:  # mirror the tile (and the box)
            tile = tile[:, ::-1]
            box_x = tw - box_x - fw * scale
        if hard:
            tile, (box_x, box_y) = _harden(tile, (box_x, box_y, fw * scale, fh * scale), rng)
        canvas[y:y + th, x:x + tw] = tile
        placed.append((x, y, tw, th))
        boxes.append((int(round(x + box_x)), int(round(y + box_y)), int(round(fw * scale)),
                      int(round(fh * scale))))
    return LabelledImage(name, canvas, boxes)


def _harden(tile: np.ndarray, box, rng: np.random.Generator):
    """Rotate (±30°), relight and add noise to a tile; return it and the face box's new corner."""
    th, tw = tile.shape[:2]
    angle = float(rng.uniform(-30, 30))
    matrix = cv2.getRotationMatrix2D((tw / 2, th / 2), angle, 1.0)
    tile = cv2.warpAffine(np.ascontiguousarray(tile), matrix, (tw, th), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    bx, by, bw, bh = box
    cx, cy = matrix @ np.array([bx + bw / 2, by + bh / 2, 1.0])
    gain, offset = float(rng.uniform(0.5, 1.3)), float(rng.uniform(-30, 30))
    noisy = tile.astype(np.float32) * gain + offset + rng.normal(0, float(rng.uniform(2, 12)), tile.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8), (cx - bw / 2, cy - bh / 2)


def _overlap(a, b, gap: int = 4) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return not (ax + aw + gap <= bx or bx + bw + gap <= ax or ay + ah + gap <= by or by + bh + gap <= ay)


def labelled_set(seed: int = 0, composites: int = 12, negatives: int = 3,
                 hard: bool = False) -> list[LabelledImage]:
    """The two portraits, ``composites`` multi-face canvases and ``negatives`` face-free canvases.

    Easy set: upright faces of 40–200 px. Hard set (``hard=True``): faces of 24–200 px, rotated
    ±30°, relit and noisy.
    """
    rng = np.random.default_rng(seed + (1000 if hard else 0))
    sources = source_photos()
    images = list(sources)
    sizes = (24, 200) if hard else (40, 200)
    kind = "hard" if hard else "composite"
    for i in range(composites):
        images.append(composite(sources, int(rng.integers(2, 7)), rng, face_sizes=sizes, hard=hard,
                                name=f"{kind}-{i:02d}"))
    for i in range(negatives):
        images.append(LabelledImage(f"negative-{i}", background(720, 960, rng), []))
    return images

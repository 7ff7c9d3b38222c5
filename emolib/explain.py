"""Why the model decided: occlusion saliency maps of face crops, their overlays, and a deletion check.

Occlusion sensitivity (Zeiler & Fergus, 2014) slides a patch filled with the crop's mean value over the
face and records how much the probability of the explained class drops with each position hidden. It
needs forward passes only, so it runs on every Keras backend; all occluded variants of all faces go
through the model in batched calls (121 variants per 48-pixel face with the defaults).

A map is ``(h, w)`` float32 over the model's input crop: the mean probability drop of the positions
covering each pixel (negative where hiding a region *raises* the class). :func:`deletion_check`
verifies that the map means something: hiding the most salient pixels must hurt the class more than
hiding as many random ones.

Nothing here imports TensorFlow; the model is reached through a ``classify`` callable, e.g.
:meth:`emolib.predict.EmotionPredictor.classify` (crops ``(n, h, w, c)`` → probabilities ``(n, k)``).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from emolib import detect as D

Classify = Callable[[np.ndarray], np.ndarray]

#: Occluding patch side and step, in model-input pixels (48-pixel faces: 11 × 11 positions).
PATCH = 8
STRIDE = 4
#: Occluded variants per model call at most.
VARIANTS_PER_CALL = 2048
#: Side of the overlay PNG of one face (the 48-pixel crop, enlarged).
OVERLAY_SIDE = 144
#: Weight of the heat map over the face in overlays.
OVERLAY_ALPHA = 0.45


def positions(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets of a patch sliding over ``length`` pixels, the last one flush with the edge."""
    if patch >= length:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def fill_values(crops: np.ndarray) -> np.ndarray:
    """The value that hides a region of each crop: its mean per channel, ``(n, 1, 1, c)`` float32."""
    return np.asarray(crops, dtype=np.float32).mean(axis=(1, 2), keepdims=True)


def occlusion_maps(classify: Classify, crops: np.ndarray, targets: Sequence[int] | None = None, *,
                   patch: int = PATCH, stride: int = STRIDE,
                   variants_per_call: int = VARIANTS_PER_CALL) -> np.ndarray:
    """Occlusion saliency of face crops for one class each.

    Parameters
    ----------
    classify : callable
        ``(m, h, w, c)`` float crops (0..255) → ``(m, k)`` class probabilities.
    crops : array ``(n, h, w, c)``
        Face crops at the model's input size (uint8 or float, 0..255).
    targets : sequence of int, optional
        Class explained for each crop; default: the class the model predicts for it.
    patch, stride : int
        Side and step of the occluding square, in pixels.
    variants_per_call : int
        Occluded crops per ``classify`` call at most (memory bound; whole faces per call).

    Returns
    -------
    numpy.ndarray
        ``(n, h, w)`` float32: at each pixel, the mean drop of the target's probability over the patch
        positions covering it. Deterministic for a deterministic model.
    """
    crops = np.asarray(crops, dtype=np.float32)
    if crops.ndim != 4:
        raise ValueError(f"crops must be (n, h, w, c), not shape {crops.shape}")
    if patch < 1 or stride < 1:
        raise ValueError(f"patch and stride must be positive, not {patch} and {stride}")
    n, height, width, _ = crops.shape
    if n == 0:
        return np.zeros((0, height, width), dtype=np.float32)
    base = np.asarray(classify(crops), dtype=np.float64)
    targets = np.argmax(base, axis=1) if targets is None else np.asarray(targets, dtype=int)
    if targets.shape != (n,) or targets.min() < 0 or targets.max() >= base.shape[1]:
        raise ValueError(f"targets must be {n} class indices below {base.shape[1]}")
    cells = [(y, x) for y in positions(height, patch, stride) for x in positions(width, patch, stride)]
    fills = fill_values(crops)
    faces_per_call = max(1, variants_per_call // len(cells))
    maps = np.zeros((n, height, width), dtype=np.float64)
    cover = np.zeros((height, width), dtype=np.float64)
    for y, x in cells:
        cover[y:y + patch, x:x + patch] += 1
    for start in range(0, n, faces_per_call):
        stop = min(n, start + faces_per_call)
        variants = np.repeat(crops[start:stop, None], len(cells), axis=1)  # (f, cells, h, w, c)
        for i, (y, x) in enumerate(cells):
            variants[:, i, y:y + patch, x:x + patch] = fills[start:stop]
        probs = np.asarray(classify(variants.reshape(-1, *crops.shape[1:])), dtype=np.float64)
        probs = probs.reshape(stop - start, len(cells), -1)
        rows = np.arange(stop - start)
        drops = base[start + rows, targets[start:stop], None] - probs[rows, :, targets[start:stop]]
        for i, (y, x) in enumerate(cells):
            maps[start:stop, y:y + patch, x:x + patch] += drops[:, i, None, None]
    return (maps / cover).astype(np.float32)


def normalize(saliency: np.ndarray) -> np.ndarray:
    """A map scaled to 0..1 for display: negative drops count as 0, the largest drop as 1."""
    positive = np.clip(np.asarray(saliency, dtype=np.float32), 0, None)
    top = float(positive.max()) if positive.size else 0.0
    return positive / top if top > 0 else positive


def overlay(crop: np.ndarray, saliency: np.ndarray, side: int = OVERLAY_SIDE,
            alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The face crop (gray or RGB) enlarged to ``side``, its map drawn over it (jet colours): RGB uint8."""
    crop = np.asarray(crop)
    face = crop[..., 0] if crop.ndim == 3 and crop.shape[2] == 1 else crop
    face = face.astype(np.uint8)
    face = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB) if face.ndim == 2 else face
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    heat = cv2.resize(normalize(saliency), (side, side), interpolation=cv2.INTER_CUBIC)
    colours = cv2.cvtColor(cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET),
                           cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(face, 1 - alpha, colours, alpha, 0)


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB uint8 array as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def saliency_entry(crop: np.ndarray, saliency: np.ndarray) -> dict:
    """The ``"saliency"`` field of a face in the result dict: ``{"png": base64 overlay, "size": [h, w]}``."""
    picture = overlay(crop, saliency)
    return {"png": base64.b64encode(png_bytes(picture)).decode("ascii"), "size": list(picture.shape[:2])}


# ---------------------------------------------------------------------------------------------------
# One image explained
# ---------------------------------------------------------------------------------------------------

@dataclass
class Explanation:
    """An image's result dict with a ``"saliency"`` entry per face, and what it was computed from.

    ``maps[i]`` is face ``i``'s occlusion map over ``crops[i]`` (the model's input); ``regions[i]`` is
    that crop's ``(x, y, w, h)`` in ``image`` (it may leave the image).
    """

    result: dict
    image: np.ndarray
    crops: np.ndarray
    maps: np.ndarray
    regions: list[tuple[float, float, float, float]]

    def overlay_image(self, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
        """The whole image with each face's map blended over its crop region, RGB uint8."""
        picture = self.image.copy()
        height, width = picture.shape[:2]
        for saliency, (x, y, w, h) in zip(self.maps, self.regions, strict=True):
            x0, y0, side_w, side_h = round(x), round(y), max(1, round(w)), max(1, round(h))
            heat = cv2.resize(normalize(saliency), (side_w, side_h), interpolation=cv2.INTER_CUBIC)
            colours = cv2.cvtColor(cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET),
                                   cv2.COLOR_BGR2RGB)
            ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(width, x0 + side_w), min(height, y0 + side_h)
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            part = colours[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
            picture[iy0:iy1, ix0:ix1] = cv2.addWeighted(picture[iy0:iy1, ix0:ix1], 1 - alpha, part, alpha, 0)
        return picture


def explain_faces(result: dict, image: np.ndarray, crops: np.ndarray, classify: Classify,
                  labels: Sequence[str], *, margin: float = 0.0, square: bool = False) -> Explanation:
    """Add each face's saliency (for its predicted emotion) to ``result``, computed on its model crop.

    ``margin`` and ``square`` are the predictor's crop settings, to place each map back in ``image``.
    """
    targets = [list(labels).index(face["emotion"]) for face in result["predictions"]]
    maps = occlusion_maps(classify, crops, targets)
    predictions = [{**face, "saliency": saliency_entry(crop, saliency)}
                   for face, crop, saliency in zip(result["predictions"], crops, maps, strict=True)]
    regions = [D.expand_box((f["box"]["x"], f["box"]["y"], f["box"]["w"], f["box"]["h"]), margin, square)
               for f in result["predictions"]]
    return Explanation({**result, "predictions": predictions}, image, crops, maps, regions)


# ---------------------------------------------------------------------------------------------------
# Checked, not just drawn: the deletion test
# ---------------------------------------------------------------------------------------------------

def deletion_check(classify: Classify, crops: np.ndarray, maps: np.ndarray, targets: Sequence[int], *,
                   fraction: float = 0.1, seed: int = 0) -> dict:
    """Target probabilities after hiding the ``fraction`` most salient pixels vs. as many random ones.

    Hidden pixels take the crop's mean value (as in :func:`occlusion_maps`); ties in a map are broken
    at random. Returns means over the faces: ``{"faces", "fraction", "original", "salient", "random",
    "salient_drop", "random_drop", "salient_wins"}`` (``salient_wins``: share of faces where hiding the
    salient pixels lowered the probability more).
    """
    crops = np.asarray(crops, dtype=np.float32)
    maps = np.asarray(maps, dtype=np.float32)
    if len(crops) == 0 or maps.shape != crops.shape[:3]:
        raise ValueError(f"need one (h, w) map per crop: crops {crops.shape}, maps {maps.shape}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), not {fraction}")
    n, height, width, _ = crops.shape
    hidden = max(1, round(fraction * height * width))
    rng = np.random.default_rng(seed)
    jitter = rng.random(maps.shape, dtype=np.float32) * 1e-6 * (np.abs(maps).max() + 1e-12)
    salient = np.argsort(-(maps + jitter).reshape(n, -1), axis=1)[:, :hidden]
    random = np.argsort(rng.random((n, height * width)), axis=1)[:, :hidden]
    fills = fill_values(crops)

    def masked(index: np.ndarray) -> np.ndarray:
        out = crops.reshape(n, height * width, -1).copy()
        out[np.arange(n)[:, None], index] = fills.reshape(n, 1, -1)
        return out.reshape(crops.shape)

    rows, targets = np.arange(n), np.asarray(targets, dtype=int)
    original = np.asarray(classify(crops))[rows, targets]
    after_salient = np.asarray(classify(masked(salient)))[rows, targets]
    after_random = np.asarray(classify(masked(random)))[rows, targets]
    return {
        "faces": int(n), "fraction": float(fraction),
        "original": float(original.mean()), "salient": float(after_salient.mean()),
        "random": float(after_random.mean()),
        "salient_drop": float((original - after_salient).mean()),
        "random_drop": float((original - after_random).mean()),
        "salient_wins": float(np.mean(after_salient < after_random)),
    }

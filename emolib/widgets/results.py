"""How one analysis looks: the annotated image, a card per face, and its probability bars.

Everything here works on the result dict of ``EmotionPredictor.predict`` (see docs/architecture.md)
and an RGB uint8 array; nothing imports TensorFlow.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import ipywidgets as widgets
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from emolib import labels as emo_labels

#: Box and card colours, one per face (matplotlib's tab10).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
#: Border of the card of a face whose answer is "not sure" (``uncertain``).
UNCERTAIN_COLOR = "#b0b0b0"
#: Longest side of the annotated image sent to the browser.
DISPLAY_SIDE = 720


#: Colours, spacing and fonts of the dashboard and the result view.
STYLESHEET = Path(__file__).with_name("emolib.css")


@lru_cache(maxsize=1)
def _stylesheet_text() -> str:
    return STYLESHEET.read_text(encoding="utf-8")


def stylesheet() -> widgets.HTML:
    """An invisible widget that puts ``emolib.css`` into the page (notebook, JupyterLab or Voilà)."""
    style = widgets.HTML(f"<style>{_stylesheet_text()}</style>", layout=widgets.Layout(display="none"))
    style.add_class("emolib-stylesheet")
    return style


def color_for(index: int) -> str:
    return COLORS[index % len(COLORS)]


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans from matplotlib (accents of Dégoût, Colère …), else Pillow's default font."""
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except Exception:  # noqa: BLE001 - any font problem: fall back to the built-in font
        return ImageFont.load_default(size=size)


def to_pil(image) -> Image.Image:
    """An RGB PIL image from an RGB (or gray) uint8 array or a PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(array.astype(np.uint8)).convert("RGB")


def encode(image, fmt: str = "jpeg", max_side: int | None = None, quality: int = 90) -> bytes:
    """Encode an image (array or PIL) as JPEG or PNG bytes, shrunk to ``max_side`` if given."""
    pil = to_pil(image)
    if max_side and max(pil.size) > max_side:
        pil = pil.copy()
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if fmt.lower() in ("jpeg", "jpg"):
        pil.save(buffer, format="JPEG", quality=quality)
    else:
        pil.save(buffer, format=fmt.upper())
    return buffer.getvalue()


def caption(prediction: dict) -> str:
    """Short text drawn above a face box: ``"Joie 87 %"``."""
    return f"{prediction.get('label') or prediction['emotion']} {prediction['confidence']:.0f} %"


def annotate(image, result: dict, max_side: int | None = DISPLAY_SIDE) -> Image.Image:
    """The image with a coloured box and a ``label confidence`` caption on every predicted face.

    The image is shrunk first (to ``max_side``) so that lines and text keep a readable size.
    """
    pil = to_pil(image).copy()
    scale = 1.0
    if max_side and max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))),
                         Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(pil)
    side = max(pil.size)
    line = max(2, round(side / 200))
    font = _font(max(12, round(side / 28)))
    for index, prediction in enumerate(result.get("predictions", [])):
        box = prediction.get("box") or {}
        x, y = box.get("x", 0) * scale, box.get("y", 0) * scale
        w, h = box.get("w", pil.width / scale) * scale, box.get("h", pil.height / scale) * scale
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(pil.width - 1, x + w), min(pil.height - 1, y + h)
        color = color_for(index)
        draw.rectangle([x0, y0, x1, y1], outline=color, width=line)
        text = caption(prediction)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        pad = max(2, line)
        ty = y0 - th - 2 * pad if y0 - th - 2 * pad >= 0 else y0  # above the box, inside if no room
        tx = min(x0, max(0, pil.width - tw - 2 * pad))
        draw.rectangle([tx, ty, tx + tw + 2 * pad, ty + th + 2 * pad], fill=color)
        draw.text((tx + pad - left, ty + pad - top), text, fill="white", font=font)
    return pil


def crop_box(image, box: dict, margin: float = 0.0) -> np.ndarray:
    """The ``box`` region (``x, y, w, h`` in pixels) of an RGB array, clipped to the image."""
    array = np.asarray(image)
    height, width = array.shape[:2]
    mx, my = box["w"] * margin, box["h"] * margin
    x0 = int(max(0, round(box["x"] - mx)))
    y0 = int(max(0, round(box["y"] - my)))
    x1 = int(min(width, round(box["x"] + box["w"] + mx)))
    y1 = int(min(height, round(box["y"] + box["h"] + my)))
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the box is empty or outside the image: draw it over the face")
    return array[y0:y1, x0:x1]


def probability_bars_html(probabilities: dict, language: str = "fr", color: str = COLORS[0]) -> str:
    """A horizontal bar chart (HTML/CSS) of class probabilities, most likely first."""
    rows = []
    for name, value in sorted(probabilities.items(), key=lambda item: -float(item[1])):
        try:
            emoji, label = emo_labels.emoji(name), emo_labels.display_name(name, language)
        except (KeyError, ValueError):
            emoji, label = "", str(name)
        percent = 100.0 * float(value)
        rows.append(
            '<div class="emolib-bar-row">'
            f'<span class="emolib-bar-name"><span class="emolib-bar-emoji">{html.escape(emoji)}</span> '
            f'{html.escape(label)}</span>'
            f'<span class="emolib-bar-track"><span class="emolib-bar-fill" '
            f'style="width:{percent:.1f}%;background:{color};"></span></span>'
            f'<span class="emolib-bar-value">{percent:.1f} %</span></div>'
        )
    return f'<div class="emolib-bars">{"".join(rows)}</div>'


#: Side in pixels of a face's valence-arousal plot.
AFFECT_PLOT_SIDE = 84


def valence_arousal_html(valence: float, arousal: float, color: str = COLORS[0],
                         side: int = AFFECT_PLOT_SIDE) -> str:
    """A small valence-arousal plot (inline SVG: valence across, arousal up, both -1..1) with the face
    as a dot, and the two values written beside it."""
    half = side / 2
    x, y = half + float(valence) * (half - 4), half - float(arousal) * (half - 4)
    svg = (f'<svg class="emolib-affect-plot" width="{side}" height="{side}" viewBox="0 0 {side} {side}" '
           f'role="img" aria-label="valence {valence:.2f}, arousal {arousal:.2f}">'
           f'<rect x="0.5" y="0.5" width="{side - 1}" height="{side - 1}" fill="#fafafa" stroke="#ccc"/>'
           f'<line x1="0" y1="{half}" x2="{side}" y2="{half}" stroke="#ccc"/>'
           f'<line x1="{half}" y1="0" x2="{half}" y2="{side}" stroke="#ccc"/>'
           f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"/></svg>')
    values = (f'<div class="emolib-affect-values">valence <b class="emolib-valence">{valence:+.2f}</b><br>'
              f'arousal <b class="emolib-arousal">{arousal:+.2f}</b></div>')
    return f'<div class="emolib-affect">{svg}{values}</div>'


#: ``explainer(image, face)`` → the face's ``"saliency"`` entry (``EmotionPredictor.explain_face``).
Explainer = Callable[[np.ndarray, dict], dict]


def why_toggle(prediction: dict, image, explainer: Explainer) -> widgets.VBox:
    """A "🔍 Why?" toggle that shows the face's saliency overlay (computed on first use, then kept)."""
    button = widgets.ToggleButton(description="🔍 Why?", tooltip="Where the model looked: occlusion saliency",
                                  layout=widgets.Layout(width="96px"))
    button.add_class("emolib-why")
    picture = widgets.Image(format="png", layout=widgets.Layout(width="96px", height="auto", display="none"))
    picture.add_class("emolib-saliency")
    note = widgets.HTML()
    note.add_class("emolib-why-note")

    def toggled(change) -> None:
        if change["new"] and not picture.value:
            try:
                entry = prediction.get("saliency") or explainer(image, prediction)
                picture.value = base64.b64decode(entry["png"])
                note.value = '<small class="emolib-why-hint">red: hiding it lowers this emotion most</small>'
            except (ValueError, KeyError) as error:
                note.value = f'<small class="emolib-why-error">{html.escape(str(error))}</small>'
        picture.layout.display = None if change["new"] and picture.value else "none"
        note.layout.display = None if change["new"] else "none"

    button.observe(toggled, names="value")
    return widgets.VBox([button, picture, note], layout=widgets.Layout(width="110px"))


def face_card(prediction: dict, index: int, image=None, language: str = "fr",
              explainer: Explainer | None = None) -> widgets.Widget:
    """One face: thumbnail, emoji, emotion name, confidence, its probability bars, its valence-arousal
    plot where the model gives them, and with an ``explainer`` (or a ``"saliency"`` entry) a "🔍 Why?"
    toggle. A face whose answer is ``uncertain``
    gets a grey card that says "not sure"."""
    uncertain = bool(prediction.get("uncertain"))
    color = UNCERTAIN_COLOR if uncertain else color_for(index)
    title = (
        f'<div class="emolib-face-title">'
        f'<span class="emolib-face-emoji">{html.escape(prediction.get("emoji", ""))}</span> '
        f'<b class="emolib-face-label">{html.escape(prediction.get("label") or prediction["emotion"])}</b>'
        f'</div><div>Face {index + 1} · confidence '
        f'<b class="emolib-face-confidence">{prediction["confidence"]:.1f} %</b>'
        + (' · <span class="emolib-face-uncertain">not sure</span>' if uncertain else '') + '</div>'
    )
    parts: list[widgets.Widget] = []
    if image is not None and prediction.get("box"):
        try:
            thumb = encode(crop_box(image, prediction["box"]), max_side=128)
            parts.append(widgets.Image(value=thumb, format="jpeg",
                                       layout=widgets.Layout(width="96px", height="auto")))
        except ValueError:
            pass
    if image is not None and prediction.get("box") and (explainer or prediction.get("saliency")):
        parts.append(why_toggle(prediction, image, explainer))
    bars = widgets.HTML(probability_bars_html(prediction.get("probabilities", {}), language, color))
    shown = [widgets.HTML(title), bars]
    if prediction.get("valence") is not None and prediction.get("arousal") is not None:
        shown.append(widgets.HTML(valence_arousal_html(prediction["valence"], prediction["arousal"], color)))
    text = widgets.VBox(shown, layout=widgets.Layout(flex="1"))
    card = widgets.HBox(parts + [text], layout=widgets.Layout(
        border=f"2px solid {color}", padding="8px", margin="4px 0", gap="12px", align_items="flex-start",
        max_width="720px"))
    card.add_class("emolib-face-card")
    if uncertain:
        card.add_class("emolib-face-card-uncertain")
    return card


class ResultView(widgets.VBox):
    """The outcome of one analysis: "faces detected: n", the annotated image and one card per face.

    With an ``explainer`` (``EmotionPredictor.explain_face``), each card has a "🔍 Why?" toggle.
    """

    def __init__(self, language: str = "fr", explainer: Explainer | None = None, **kwargs):
        super().__init__(**kwargs)
        self.language = language
        self.explainer = explainer
        self.add_class("emolib-results")
        self._stylesheet = stylesheet()  # its own, so that a ResultView shown alone is styled too
        self.image: np.ndarray | None = None
        self.result: dict | None = None

    def clear(self) -> None:
        self.children = ()
        self.image = self.result = None

    def show(self, image, result: dict, source: str = "") -> None:
        """Display ``result`` (a result dict) computed on ``image`` (RGB array)."""
        self.image, self.result = np.asarray(image), result
        n = int(result.get("faces_detected", len(result.get("predictions", []))))
        details = [f"source: {source}" if source else "", f"detector: {result.get('detector', '')}"]
        details = " · ".join(html.escape(d) for d in details if d and not d.endswith(": "))
        header = widgets.HTML(
            f'<h3 class="emolib-faces-count">Faces detected: {n}</h3>'
            f'<div class="emolib-result-details">{details}</div>')
        annotated = widgets.Image(value=encode(annotate(image, result), fmt="jpeg"), format="jpeg",
                                  layout=widgets.Layout(max_width="100%", width="auto", height="auto",
                                                        align_self="flex-start"))
        annotated.add_class("emolib-annotated")
        children: list[widgets.Widget] = [self._stylesheet, header, annotated]
        predictions = result.get("predictions", [])
        if not predictions:
            message = widgets.HTML(
                '<div class="emolib-no-face">🙈 No face found in this image. Try another photo with a face '
                "seen from the front, or draw a box around the face yourself with <b>✂️ Crop by hand</b>."
                "</div>")
            children.append(message)
        for index, prediction in enumerate(predictions):
            children.append(face_card(prediction, index, image, self.language, self.explainer))
        self.children = tuple(children)

"""Dashboard widgets: the webcam (anywidget), the result view and the assembled dashboard.

``EmotionDashboard`` is what ``dashboards/emotions.ipynb`` shows under Voilà.
"""

from emolib.widgets.app import EmotionDashboard, find_models, resolve_start_model, sample_image_bytes
from emolib.widgets.results import ResultView, annotate, face_card, probability_bars_html
from emolib.widgets.webcam import WebcamWidget

__all__ = [
    "EmotionDashboard",
    "ResultView",
    "WebcamWidget",
    "annotate",
    "face_card",
    "find_models",
    "probability_bars_html",
    "resolve_start_model",
    "sample_image_bytes",
]

"""Emotions over time in a video: sampled frames → tracked faces → a timeline table, plots, a summary.

:func:`analyze_video` decodes a video with OpenCV, samples frames (every ``every`` frames, or ``fps``
frames per second), detects and classifies the faces of a chunk of sampled frames with **one model call**
(:meth:`emolib.predict.EmotionPredictor.predict_chunks`), and gives each face a **track id** with
:class:`IoUTracker` (IoU matching of boxes; a track survives ``max_missed`` sampled frames without its
face). The timeline has one row per face per sampled frame, columns :func:`timeline_columns`::

    time, frame, track, x, y, w, h, emotion, confidence, uncertain, p_angry, ..., p_neutral

``time`` is in seconds, the frame's own time stamp in the stream (so variable frame rates are right),
``confidence`` a percentage and ``uncertain`` the "not sure" flag (as in the
result dict), ``p_*`` probabilities in the model's label order. With ``out``, rows are appended to a
CSV chunk by chunk (flushed and synced), so an interrupted analysis keeps whole rows; ``resume=True``
continues after the last frame in that CSV.

:func:`smooth` (moving average of probabilities per track), :func:`summary` (share of time in each
emotion per track), :func:`plot_timeline` and :func:`contact_sheet` turn a timeline into figures;
:func:`make_demo_clip` writes a clip of two faces moving across the frame from two photos.

Modules, one job each: :mod:`~emolib.video.frames` (decoding, sampling, writing frames),
:mod:`~emolib.video.tracking` (:class:`IoUTracker`), :mod:`~emolib.video.timeline` (the table: columns,
analysis, CSV, smoothing, summary), :mod:`~emolib.video.plots` (figures), :mod:`~emolib.video.clips`
(the demo clip). Every public name is here too: ``from emolib.video import analyze_video``.
"""

from __future__ import annotations

from emolib.video.clips import make_demo_clip
from emolib.video.frames import STILL_IMAGES, VideoInfo, frame_step, open_video, sampled_frames, write_video
from emolib.video.plots import contact_sheet, emotion_palette, plot_timeline
from emolib.video.timeline import (
    BASE_COLUMNS,
    PROBABILITY_PREFIX,
    UNCERTAIN_COLUMN,
    analyze_video,
    probability_columns,
    read_timeline,
    smooth,
    summary,
    timeline_columns,
)
from emolib.video.tracking import IoUTracker

__all__ = [
    "BASE_COLUMNS", "PROBABILITY_PREFIX", "STILL_IMAGES", "UNCERTAIN_COLUMN", "IoUTracker", "VideoInfo",
    "analyze_video", "contact_sheet", "emotion_palette", "frame_step", "make_demo_clip", "open_video",
    "plot_timeline", "probability_columns", "read_timeline", "sampled_frames", "smooth", "summary",
    "timeline_columns", "write_video",
]


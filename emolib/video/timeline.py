"""The timeline table: its columns, :func:`analyze_video` (which makes it, appending whole rows to a CSV
chunk by chunk, resumable), :func:`read_timeline`, :func:`smooth` and :func:`summary`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from emolib.files import append_synced, cut_torn_line
from emolib.predict import CHUNK
from emolib.video.frames import VideoInfo, frame_step, open_video, sampled_frames
from emolib.video.tracking import IoUTracker

#: Columns before the ``p_<emotion>`` probability columns (every timeline has them).
BASE_COLUMNS = ("time", "frame", "track", "x", "y", "w", "h", "emotion", "confidence")
#: the "not sure" flag of each face, after ``confidence`` (timelines written before it lack it)
UNCERTAIN_COLUMN = "uncertain"
PROBABILITY_PREFIX = "p_"


def timeline_columns(labels: Sequence[str]) -> list[str]:
    """The timeline's columns for a model with these labels."""
    return [*BASE_COLUMNS, UNCERTAIN_COLUMN, *(PROBABILITY_PREFIX + name for name in labels)]


def probability_columns(timeline: pd.DataFrame) -> list[str]:
    """The ``p_<emotion>`` columns of a timeline, in order."""
    return [c for c in timeline.columns if c.startswith(PROBABILITY_PREFIX)]


def analyze_video(path: str | os.PathLike, predictor=None, *, every: int | None = None,
                  fps: float | None = None, out: str | os.PathLike | None = None, resume: bool = False,
                  tracker: IoUTracker | None = None, chunk_frames: int = CHUNK,
                  progress: bool = True) -> pd.DataFrame:
    """Detect, classify and track the faces of a video's sampled frames.

    Parameters
    ----------
    path : path
        The video (anything OpenCV's FFmpeg backend decodes: mp4, avi, mkv, webm, y4m …).
    predictor : EmotionPredictor, optional
        Default: ``EmotionPredictor()`` (the shipped model, YuNet when available).
    every, fps : int or float, optional
        Sample every ``every``-th frame, or about ``fps`` frames per second (default: every frame).
    out : path, optional
        CSV to append rows to, chunk by chunk (whole rows only; flushed and synced).
    resume : bool
        With ``out`` already holding rows: keep them and continue after their last frame.
    tracker : IoUTracker, optional
        Tracking settings (default ``IoUTracker()``).
    chunk_frames : int
        Sampled frames classified per model call.
    progress : bool
        Show a progress bar (frames/s) on stderr.

    Returns
    -------
    pandas.DataFrame
        The timeline (columns :func:`timeline_columns`), with rows kept from a resumed CSV.
    """
    capture, info = open_video(path)
    try:
        step = frame_step(info, every, fps)
        if predictor is None:
            from emolib.predict import EmotionPredictor

            predictor = EmotionPredictor()
        limit = getattr(predictor, "max_pixels", None)
        if limit and info.width * info.height > limit:  # refused before a row is written
            raise ValueError(f"{path}: its {info.width}×{info.height} frames are larger than the predictor's "
                             f"{limit / 1e6:.0f} MP limit (EmotionPredictor(max_pixels=...))")
        columns = timeline_columns(predictor.labels)
        done = _read_partial(out, columns) if (out is not None and resume) else _empty(columns)
        tracker = tracker or IoUTracker()
        if len(done):
            tracker = IoUTracker.from_timeline(done, step, min_iou=tracker.min_iou,
                                               max_shift=tracker.max_shift, max_missed=tracker.max_missed)
        start = int(done["frame"].max()) + step if len(done) else 0
        writer = None  # opened with the first decoded frames: a video refused midway writes nothing
        rows: list[list] = []
        last_time = float(done["time"].max()) if len(done) else None
        bar = _progress_bar(info, step, start, progress)
        frames = sampled_frames(capture, step, start, info.fps)
        items = (((index, seconds), rgb) for index, seconds, rgb in frames)
        for outcomes in predictor.predict_chunks(items, chunk=chunk_frames):
            last_time = outcomes[-1].key[1]
            if writer is None and out is not None:
                writer = _CsvAppender(out, columns, append=bool(len(done)))
            new = _timeline_rows(outcomes, tracker)
            if writer is not None:
                writer.append(new)
            rows.extend(new)
            bar.update(len(outcomes))
        bar.close()
        if last_time is None:
            raise ValueError(f"{path}: no frame could be decoded (empty or truncated video)")
        _warn_if_cut(path, info, step, last_time)
        timeline = pd.DataFrame(rows, columns=columns)
        return pd.concat([done, timeline], ignore_index=True) if len(done) else timeline
    finally:
        capture.release()


def _warn_if_cut(path, info: VideoInfo, step: int, last_time: float) -> None:
    """Say so on stderr when the decoded frames end well before the duration the container announces
    (a truncated file): the timeline holds every frame that could be decoded."""
    announced = info.frames / info.fps
    if info.frames and last_time < announced - (step + 1) / info.fps:
        print(f"emolib video: {path}: the frames end at {last_time:.2f} s of the {announced:.2f} s the file "
              "announces: it may be truncated (the timeline holds every frame that could be decoded)",
              file=sys.stderr)


def _timeline_rows(outcomes, tracker: IoUTracker) -> list[list]:
    """The timeline rows of a chunk of frames' :class:`emolib.predict.Outcome` (keys: frame, seconds)."""
    rows = []
    for outcome in outcomes:
        (index, seconds), result = outcome.key, outcome.result
        if outcome.error is not None:  # a decoded frame is an RGB array: only a bug gets here
            raise ValueError(f"frame {index}: {outcome.error}")
        faces = result["predictions"]
        ids = tracker.update([(f["box"]["x"], f["box"]["y"], f["box"]["w"], f["box"]["h"]) for f in faces])
        for track, face in zip(ids, faces, strict=True):
            box = face["box"]
            rows.append([round(seconds, 4), index, track, box["x"], box["y"], box["w"], box["h"],
                         face["emotion"], face["confidence"], face["uncertain"],
                         *face["probabilities"].values()])
    return rows


def _progress_bar(info: VideoInfo, step: int, start: int, enabled: bool):
    from tqdm.auto import tqdm

    total = max(0, -(-(info.frames - start) // step)) if info.frames else None
    return tqdm(total=total, unit="frame", desc="video", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


class _CsvAppender:
    """Append whole rows to a CSV: header first, then one synced append per chunk
    (:func:`emolib.files.append_synced`: a failed one, a full disk, is cut back)."""

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], append: bool):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = list(columns)
        if not append:
            self.path.write_bytes(b"")
            self._write(",".join(self.columns) + "\n")

    def append(self, rows: list[list]) -> None:
        if rows:
            self._write(pd.DataFrame(rows, columns=self.columns).to_csv(index=False, header=False))

    def _write(self, text: str) -> None:
        append_synced(self.path, text.encode("utf-8"))


def _read_partial(path: str | os.PathLike, columns: Sequence[str]) -> pd.DataFrame:
    """Rows already in ``path``, but those of its last frame, which are cut off (empty when there is no
    file): a kill in the middle of an append may have written some of that frame's faces and not the
    others (and cut a row, also dropped), so the frame is analysed again."""
    path = Path(path)
    if cut_torn_line(path) == 0:  # no file, or not one whole line
        return _empty(columns)
    with open(path, encoding="utf-8") as file:
        header = file.readline().strip()
    if header.split(",") != list(columns):
        raise ValueError(f"{path}: cannot resume: its columns are not this model's timeline columns "
                         f"({header[:80]}…); remove it or choose another --out")
    timeline = read_timeline(path)
    if not len(timeline):
        return timeline
    kept = timeline[timeline["frame"] < timeline["frame"].max()]
    with open(path, "rb+") as file:  # the header and the kept rows stay, byte for byte
        for _ in range(1 + len(kept)):
            file.readline()
        file.truncate(file.tell())
    return kept.reset_index(drop=True)


def read_timeline(path: str | os.PathLike) -> pd.DataFrame:
    """A timeline CSV written by :func:`analyze_video`."""
    timeline = pd.read_csv(path)
    missing = [c for c in BASE_COLUMNS if c not in timeline.columns]
    if missing:
        raise ValueError(f"{path}: not an emolib video timeline (missing columns {missing})")
    return timeline


def smooth(timeline: pd.DataFrame, window: int) -> pd.DataFrame:
    """Moving average (centred, ``window`` sampled frames) of each track's probabilities; ``emotion`` and
    ``confidence`` follow the smoothed probabilities (``uncertain`` stays each sampled frame's own)."""
    if window < 1:
        raise ValueError(f"the smoothing window must be at least 1 frame, not {window}")
    columns = probability_columns(timeline)
    result = timeline.sort_values(["track", "frame"]).copy()
    result[columns] = (result.groupby("track")[columns]
                       .transform(lambda s: s.rolling(window, min_periods=1, center=True).mean()))
    probabilities = result[columns].to_numpy(dtype=float)
    names = np.array([c[len(PROBABILITY_PREFIX):] for c in columns])
    result["emotion"] = names[probabilities.argmax(axis=1)] if len(result) else []
    result["confidence"] = (probabilities.max(axis=1) * 100).round(2) if len(result) else []
    return result.sort_values(["frame", "track"]).reset_index(drop=True)


def summary(timeline: pd.DataFrame) -> pd.DataFrame:
    """Per track: first and last time, sampled frames, dominant emotion and the share (%) of its sampled
    frames in each emotion."""
    names = [c[len(PROBABILITY_PREFIX):] for c in probability_columns(timeline)]
    grouped = timeline.groupby("track")
    table = pd.DataFrame({"start_s": grouped["time"].min(), "end_s": grouped["time"].max(),
                          "frames": grouped.size()})
    shares = pd.crosstab(timeline["track"], timeline["emotion"], normalize="index") * 100
    shares = shares.reindex(columns=names, fill_value=0.0).round(1)
    table["dominant"] = shares.idxmax(axis=1) if len(shares) else []
    return table.join(shares)

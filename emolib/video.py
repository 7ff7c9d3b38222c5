"""Emotions over time in a video: sampled frames → tracked faces → a timeline table, plots, a summary.

:func:`analyze_video` decodes a video with OpenCV, samples frames (every ``every`` frames, or ``fps``
frames per second), detects and classifies the faces of a chunk of sampled frames with **one model call**
(:meth:`emolib.predict.EmotionPredictor.finish`), and gives each face a **track id** with
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
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from emolib.detect import box_iou
from emolib.files import cut_torn_line
from emolib.predict import CHUNK

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


# ---------------------------------------------------------------------------------------------------
# Tracking
# ---------------------------------------------------------------------------------------------------

def _shift(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance between the centres of two boxes, in sizes (the larger side) of the first."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    distance = np.hypot(ax + aw / 2 - bx - bw / 2, ay + ah / 2 - by - bh / 2)
    return float(distance / max(aw, ah, 1))


@dataclass
class _Track:
    id: int
    box: tuple[float, float, float, float]
    missed: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)  # box shift per sampled frame

    def predicted(self) -> tuple[float, float, float, float]:
        """Where the face should be in the next sampled frame (constant velocity)."""
        x, y, w, h = self.box
        frames = self.missed + 1
        return (x + self.velocity[0] * frames, y + self.velocity[1] * frames, w, h)

    def matched(self, box: Sequence[float]) -> None:
        frames = self.missed + 1
        self.velocity = ((box[0] - self.box[0]) / frames, (box[1] - self.box[1]) / frames)
        self.box, self.missed = tuple(box), 0


@dataclass
class IoUTracker:
    """Give each face box a track id by matching it to where each live track's face should be.

    A track's face is expected at its last box moved by its last velocity (constant-velocity
    prediction), so a moving face is still matched after a missed detection.

    Parameters
    ----------
    min_iou : float
        Smallest IoU between a box and a track's predicted box for them to match (greedy, best pairs
        first).
    max_shift : float
        Boxes and tracks left unmatched by IoU (fast motion, sparse sampling) then match by the distance
        between centres, nearest first, up to this many face sizes.
    max_missed : int
        Sampled frames a track may go without a matching box before it ends (a face missed once or
        twice by the detector keeps its id).
    """

    min_iou: float = 0.3
    max_shift: float = 1.5
    max_missed: int = 2
    next_id: int = 1
    tracks: list[_Track] = field(default_factory=list)

    def update(self, boxes: Sequence[Sequence[float]]) -> list[int]:
        """Track ids of the boxes of one sampled frame (new ids for faces that match no track)."""
        ids: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        predicted = [track.predicted() for track in self.tracks]
        by_overlap = sorted(((-box_iou(p, box), t, b) for t, p in enumerate(predicted)
                             for b, box in enumerate(boxes)))
        by_distance = sorted(((_shift(p, box), t, b) for t, p in enumerate(predicted)
                              for b, box in enumerate(boxes)))
        candidates = [pair for pair in by_overlap if -pair[0] >= self.min_iou]
        candidates += [pair for pair in by_distance if pair[0] <= self.max_shift]
        for _, t, b in candidates:
            if t in used or ids[b] is not None:
                continue
            used.add(t)
            ids[b] = self.tracks[t].id
            self.tracks[t].matched(boxes[b])
        for t, track in enumerate(self.tracks):
            if t not in used:
                track.missed += 1
        self.tracks = [track for track in self.tracks if track.missed <= self.max_missed]
        for b, box in enumerate(boxes):
            if ids[b] is None:
                ids[b] = self.next_id
                self.tracks.append(_Track(self.next_id, tuple(box)))
                self.next_id += 1
        return [int(i) for i in ids]

    @classmethod
    def from_timeline(cls, timeline: pd.DataFrame, step: int, **options) -> IoUTracker:
        """A tracker that continues a timeline sampled every ``step`` frames (its boxes replayed)."""
        tracker = cls(**options)
        boxes = {frame: rows[["x", "y", "w", "h"]].to_numpy(dtype=float).tolist()
                 for frame, rows in timeline.groupby("frame")}
        last = int(timeline["frame"].max()) if len(timeline) else -1
        for frame in range(0, last + 1, step):
            tracker.update(boxes.get(frame, []))
        return tracker


# ---------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoInfo:
    """What OpenCV says about a video: frames per second, frame count (an estimate), size."""

    fps: float
    frames: int
    width: int
    height: int


#: Still-image formats refused as videos (an animated GIF is a video and is read).
STILL_IMAGES = ("PNG", "JPEG", "BMP", "TIFF", "WebP")


def open_video(path: str | os.PathLike) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a video with OpenCV's FFmpeg backend.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When it is not a video OpenCV can decode (a text file, an empty or truncated file, a container
        without a video stream, a still image …).
    """
    from emolib.imageio import image_signature

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such video file: {path}")
    with open(path, "rb") as file:
        still = image_signature(file.read(16))
    if still in STILL_IMAGES:
        raise ValueError(f"{path} is a {still} image, not a video: use `emolib predict {path}` for a photo")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened() or capture.get(cv2.CAP_PROP_FRAME_WIDTH) <= 0:
        capture.release()
        raise ValueError(f"{path}: not a readable video: OpenCV/FFmpeg cannot open it (not a video, a "
                         "container without a video stream such as audio only, no frame, or a file cut "
                         "before its index)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(fps=float(fps) if fps and fps > 0 else 25.0,
                     frames=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
                     width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return capture, info


def frame_step(info: VideoInfo, every: int | None = None, fps: float | None = None) -> int:
    """Frames between two sampled frames: ``every``, or the step that gives about ``fps`` per second."""
    if every is not None and fps is not None:
        raise ValueError("give either every (frames) or fps (frames per second), not both")
    if every is not None:
        if every < 1:
            raise ValueError(f"every must be at least 1, not {every}")
        return int(every)
    if fps is not None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        return max(1, round(info.fps / fps))
    return 1


def sampled_frames(capture: cv2.VideoCapture, step: int, start: int = 0, fps: float = 25.0,
                   ) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(frame index, time in seconds, RGB frame)`` of every ``step``-th frame from ``start`` (skipped
    frames are not converted). The time is the frame's time stamp in the stream (right for variable
    frame rates too); ``index / fps`` where the stream has none."""
    index = 0
    while True:
        if index >= start and (index - start) % step == 0:
            ok, bgr = capture.read()
            if not ok:
                return
            stamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
            seconds = stamp if np.isfinite(stamp) and (stamp > 0 or index == 0) else index / fps
            yield index, seconds, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        elif not capture.grab():
            return
        index += 1


# ---------------------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------------------

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
        try:
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
        finally:
            if writer is not None:
                writer.close()
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
    """Append whole rows to a CSV: header first, then one write + flush + fsync per chunk."""

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], append: bool):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = list(columns)
        self.file = open(self.path, "a" if append else "w", encoding="utf-8", newline="")  # noqa: SIM115
        if not append:
            self._write(",".join(self.columns) + "\n")

    def append(self, rows: list[list]) -> None:
        if rows:
            self._write(pd.DataFrame(rows, columns=self.columns).to_csv(index=False, header=False))

    def _write(self, text: str) -> None:
        self.file.write(text)
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


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


# ---------------------------------------------------------------------------------------------------
# Smoothing and summary
# ---------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------

def emotion_palette(names: Sequence[str]) -> dict[str, tuple]:
    """One seaborn colour per emotion, the same in every figure."""
    import seaborn as sns

    return dict(zip(names, sns.color_palette("tab10", len(names)), strict=True))


def plot_timeline(timeline: pd.DataFrame, path: str | os.PathLike | None = None, *, title: str | None = None):
    """Per track, the probability of each emotion over time (stacked areas) over a band of the dominant
    emotion; saved to ``path`` when given. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    columns = probability_columns(timeline)
    names = [c[len(PROBABILITY_PREFIX):] for c in columns]
    colours = emotion_palette(names)
    tracks = sorted(timeline["track"].unique())
    if not tracks:
        raise ValueError("the timeline has no face: nothing to plot")
    sns.set_theme(style="whitegrid", context="notebook")
    ratios = [r for _ in tracks for r in (4, 0.6)]
    figure, axes = plt.subplots(2 * len(tracks), 1, figsize=(10, 2.9 * len(tracks) + 0.8), sharex=True,
                                gridspec_kw={"height_ratios": ratios, "hspace": 0.3}, squeeze=False)
    axes = axes[:, 0]
    times = np.sort(timeline["time"].unique())
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.1
    for i, track in enumerate(tracks):
        rows = timeline[timeline["track"] == track].sort_values("time")
        area, band = axes[2 * i], axes[2 * i + 1]
        area.stackplot(rows["time"], *(rows[c] for c in columns), labels=names,
                       colors=[colours[n] for n in names], alpha=0.9, linewidth=0)
        area.set_ylim(0, 1)
        shares = rows["emotion"].value_counts(normalize=True).head(3)
        area.set_title(f"track {track}: " + ", ".join(f"{e} {100 * v:.0f} %" for e, v in shares.items()),
                       loc="left", fontsize="medium")
        area.set_ylabel(f"track {track}\nprobability")
        for emotion, colour in colours.items():
            spans = [(t - step / 2, step) for t in rows.loc[rows["emotion"] == emotion, "time"]]
            if spans:
                band.broken_barh(spans, (0, 1), facecolors=colour, linewidth=0)
        band.set_yticks([])
        band.set_ylabel("top", rotation=0, ha="right", va="center")
        band.grid(False)
    axes[-1].set_xlabel("time (s)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=min(len(names), 8), frameon=False,
                  bbox_to_anchor=(0.5, 1.0), fontsize="small")
    figure.suptitle(title or "Emotions over time, per tracked face", y=1.04)
    if path is not None:
        from emolib.files import atomic_path

        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=110, bbox_inches="tight")
    return figure


def contact_sheet(path: str | os.PathLike, timeline: pd.DataFrame, frames: int = 6, columns: int = 3,
                  width: int = 320) -> np.ndarray:
    """An RGB grid of ``frames`` sampled frames spread over the video, with each face's box, track id and
    emotion drawn on it."""
    names = [c[len(PROBABILITY_PREFIX):] for c in probability_columns(timeline)]
    colours = {k: tuple(int(255 * v) for v in c) for k, c in emotion_palette(names).items()}
    chosen = np.unique(timeline["frame"].to_numpy())
    if len(chosen):
        chosen = chosen[np.linspace(0, len(chosen) - 1, min(frames, len(chosen))).astype(int)]
    capture, _ = open_video(path)
    tiles = []
    try:
        for index in chosen:
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, bgr = capture.read()
            if not ok:
                continue
            rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            for face in timeline[timeline["frame"] == index].itertuples():
                colour = colours.get(face.emotion, (255, 255, 255))
                cv2.rectangle(rgb, (int(face.x), int(face.y)), (int(face.x + face.w), int(face.y + face.h)),
                              colour, 3)
                text = f"#{face.track} {face.emotion}"
                (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2)
                left = min(max(0, int(face.x)), rgb.shape[1] - text_w - 6)
                top = max(0, int(face.y) - text_h - 10)
                cv2.rectangle(rgb, (left, top), (left + text_w + 6, top + text_h + 10), (0, 0, 0), -1)
                cv2.putText(rgb, text, (left + 3, top + text_h + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.8, colour, 2,
                            cv2.LINE_AA)
            seconds = float(timeline.loc[timeline["frame"] == index, "time"].iloc[0])
            cv2.putText(rgb, f"{seconds:.1f} s", (8, rgb.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                        (255, 255, 255), 2, cv2.LINE_AA)
            scale = width / rgb.shape[1]
            tile = cv2.resize(rgb, (width, round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
            tiles.append(cv2.copyMakeBorder(tile, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255)))
    finally:
        capture.release()
    if not tiles:
        raise ValueError("no frame of the timeline could be read back from the video")
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % columns)
    return np.vstack([np.hstack(tiles[r:r + columns]) for r in range(0, len(tiles), columns)])


# ---------------------------------------------------------------------------------------------------
# A demo clip
# ---------------------------------------------------------------------------------------------------

def make_demo_clip(path: str | os.PathLike, photos: Sequence[str | os.PathLike], *, seconds: float = 4.0,
                   fps: int = 10, size: tuple[int, int] = (640, 480), face_height: int = 200) -> Path:
    """Write a clip in which each photo, scaled to ``face_height`` pixels, slides across the frame in its
    own horizontal band (the first left → right, the second right → left).

    ``.y4m`` is written directly (raw YUV 4:2:0, what Chromium's fake camera reads); any other suffix
    goes through OpenCV's writer (``.mp4``: mp4v, ``.avi``: MJPG).
    """
    from emolib.imageio import load_image

    width, height = size
    faces = []
    for photo in photos:
        rgb = load_image(photo)
        scale = face_height / rgb.shape[0]
        faces.append(cv2.resize(rgb, (round(rgb.shape[1] * scale), face_height),
                                interpolation=cv2.INTER_AREA))
    band = height // max(1, len(faces))
    count = max(1, round(seconds * fps))
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 90, dtype=np.uint8)
        progress = i / max(1, count - 1)
        for k, face in enumerate(faces):
            room = width - face.shape[1]
            x = round(room * (progress if k % 2 == 0 else 1 - progress))
            y = k * band + max(0, (band - face.shape[0]) // 2)
            frame[y:y + face.shape[0], x:x + face.shape[1]] = face[: height - y, : width - x]
        frames.append(frame)
    return write_video(path, frames, fps)


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write RGB frames (all one even size) as a video file, atomically; see :func:`make_demo_clip`."""
    from emolib.files import atomic_path

    path = Path(path)
    height, width = frames[0].shape[:2]
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".y4m":
            with open(tmp, "wb") as file:
                file.write(f"YUV4MPEG2 W{width} H{height} F{round(fps)}:1 Ip A1:1 C420jpeg\n".encode())
                for frame in frames:
                    file.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
        else:
            codec = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
            writer = cv2.VideoWriter(str(tmp), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*codec), fps,
                                     (width, height))
            if not writer.isOpened():
                raise ValueError(f"OpenCV cannot write {path.suffix} videos here")
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            writer.release()
    return path

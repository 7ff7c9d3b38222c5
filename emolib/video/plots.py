"""Figures of a timeline: one colour per emotion (:func:`emotion_palette`), the timeline per track
(:func:`plot_timeline`) and a contact sheet of annotated frames (:func:`contact_sheet`)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd

from emolib.video.frames import open_video
from emolib.video.timeline import PROBABILITY_PREFIX, probability_columns


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

"""Track ids for the faces of successive sampled frames: :class:`IoUTracker` (IoU matching of boxes,
constant-velocity prediction, nearest centres as a fallback; a track survives ``max_missed`` frames)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emolib.detect import box_iou


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

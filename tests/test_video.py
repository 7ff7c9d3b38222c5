"""Video analysis on a clip made at test time with ffmpeg from the shared photos.

The clip (4 s, 10 fps, 640×480): Grace Hopper slides left → right in the upper half, Eileen Collins right →
left in the lower half, and Collins is cut out of frames 10 and 11 (a "missed detection" the tracker must
bridge).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emolib import commands
from emolib import video as V
from emolib.detect import box_iou
from emolib.predict import EmotionPredictor

SECONDS, FPS = 4, 10
FRAMES = SECONDS * FPS
GAP = (10, 11)  # frames without the second face


@pytest.fixture(scope="module")
def clip(tmp_path_factory, photos_dir):
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        pytest.fail("ffmpeg is required (make browser installs it)")
    path = tmp_path_factory.mktemp("video") / "two-faces.mp4"
    graph = ("[1]scale=-2:220[a];[2]scale=-2:220[b];"
             f"[0][a]overlay=x='t/{SECONDS}*(W-w)':y=10[top];"
             f"[top][b]overlay=x='(1-t/{SECONDS})*(W-w)':y=250:"
             f"enable='not(between(n,{GAP[0]},{GAP[1]}))'")
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-f", "lavfi",
                    "-i", f"color=c=gray:s=640x480:r={FPS}:d={SECONDS}",
                    "-i", str(photos_dir / "grace_hopper.jpg"),
                    "-i", str(photos_dir / "astronaut_eileen_collins.png"),
                    "-filter_complex", graph, "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-frames:v", str(FRAMES), str(path)], check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def predictor(yunet_path):
    return EmotionPredictor(detector="yunet")


@pytest.fixture(scope="module")
def timeline(clip, predictor, tmp_path_factory):
    out = tmp_path_factory.mktemp("timeline") / "timeline.csv"
    return V.analyze_video(clip, predictor, out=out, progress=False), out


def test_two_stable_tracks_one_row_per_face_per_frame(timeline):
    table, _ = timeline
    assert sorted(table["track"].unique()) == [1, 2]
    assert table.groupby(["frame", "track"]).size().max() == 1
    assert len(table) == 2 * FRAMES - len(GAP)
    top, bottom = (table[table["track"] == t].sort_values("frame") for t in (1, 2))
    assert list(top["frame"]) == list(range(FRAMES))  # Grace Hopper, in every frame
    assert list(bottom["frame"]) == [f for f in range(FRAMES) if f not in GAP]  # same id after the gap
    assert top["x"].is_monotonic_increasing and top["x"].iloc[-1] - top["x"].iloc[0] > 300
    assert bottom["x"].is_monotonic_decreasing and (bottom["y"] > 240).all() and (top["y"] < 240).all()
    assert np.allclose(table["time"], table["frame"] / FPS)


def test_csv_schema_and_values(timeline, predictor):
    table, out = timeline
    written = pd.read_csv(out)
    assert list(written.columns) == V.timeline_columns(predictor.labels)
    assert list(written.columns[:10]) == ["time", "frame", "track", "x", "y", "w", "h", "emotion",
                                          "confidence", "uncertain"]
    threshold = predictor.uncertain_below if predictor.uncertain_below is not None else -1
    assert (written["uncertain"] == (written["confidence"] < threshold)).all()
    pd.testing.assert_frame_equal(written, table, check_dtype=False)
    probabilities = written[V.probability_columns(written)].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert np.allclose(written["confidence"], probabilities.max(axis=1) * 100, atol=0.01)
    best = np.array(predictor.labels)[probabilities.argmax(axis=1)]
    assert (written["emotion"] == best).all()


def test_sampling_every_and_fps(clip, predictor):
    every = V.analyze_video(clip, predictor, every=4, progress=False)
    assert sorted(every["frame"].unique()) == list(range(0, FRAMES, 4))
    assert sorted(every["track"].unique()) == [1, 2]
    by_fps = V.analyze_video(clip, predictor, fps=2.5, progress=False)  # 10 fps / 2.5 → every 4th frame
    pd.testing.assert_frame_equal(by_fps, every)
    with pytest.raises(ValueError, match="not both"):
        V.analyze_video(clip, predictor, every=2, fps=5, progress=False)


def test_non_video_file_is_a_clear_error(tmp_path, capsys):
    notes = tmp_path / "notes.mp4"
    notes.write_text("meeting notes, not a video\n" * 50)
    with pytest.raises(ValueError, match="not a readable video"):
        V.open_video(notes)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable video"):
        V.open_video(empty)
    with pytest.raises(FileNotFoundError):
        V.open_video(tmp_path / "missing.mp4")
    out = tmp_path / "timeline.csv"
    assert commands.main(["video", str(notes), "--out", str(out)]) == 2
    assert "not a readable video" in capsys.readouterr().err
    assert not out.exists()  # refused before anything is written


class _InterruptedPredictor:
    """The real predictor, interrupted (Ctrl-C) when its second chunk is classified."""

    predict_chunks = EmotionPredictor.predict_chunks  # the real stream, over the methods below

    def __init__(self, predictor):
        self.inner, self.labels, self.calls = predictor, predictor.labels, 0

    def prepare(self, image, whole_image=False):
        return self.inner.prepare(image, whole_image=whole_image)

    def finish(self, prepared):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return self.inner.finish(prepared)


def test_interrupted_analysis_keeps_whole_rows_and_resumes(clip, predictor, timeline, tmp_path):
    out = tmp_path / "timeline.csv"
    with pytest.raises(KeyboardInterrupt):
        V.analyze_video(clip, _InterruptedPredictor(predictor), out=out, chunk_frames=16, progress=False)
    kept = pd.read_csv(out)  # a valid CSV with the first chunk's 16 frames
    assert sorted(kept["frame"].unique()) == list(range(16))
    with open(out, "a") as file:  # as if killed in the middle of a write
        file.write("1.6,16,1,20")
    resumed = V.analyze_video(clip, predictor, out=out, resume=True, progress=False)
    full, _ = timeline
    pd.testing.assert_frame_equal(resumed, full, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(out), full, check_dtype=False)


def test_a_frame_torn_between_its_faces_is_analysed_again(clip, predictor, timeline, tmp_path):
    """Issue 38's kill campaign: a kill in the middle of an append wrote the first face of the chunk's
    last frame and not the second; resuming after that frame lost the second face's row."""
    full, _ = timeline
    assert full.groupby("frame").size().max() == 2, "the clip should show two faces at once"
    out = tmp_path / "timeline.csv"
    with pytest.raises(KeyboardInterrupt):
        V.analyze_video(clip, _InterruptedPredictor(predictor), out=out, chunk_frames=16, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    last = max(int(line.split(",")[1]) for line in lines[1:])
    rows_of_last = [line for line in lines[1:] if int(line.split(",")[1]) == last]
    assert len(rows_of_last) == 2
    out.write_text("".join(lines[:-1]))  # the frame's second face never reached the file
    resumed = V.analyze_video(clip, predictor, out=out, resume=True, progress=False)
    pd.testing.assert_frame_equal(resumed, full, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(out), full, check_dtype=False)


def test_a_full_disk_keeps_whole_rows_and_the_resume_finishes(clip, predictor, timeline, tmp_path,
                                                              monkeypatch):
    """Issue 38, a full disk in the middle of a chunk's append (a short write, then ENOSPC): the timeline
    kept the part written; now the append is cut back to whole rows, and ``--resume`` finishes it."""
    import errno

    from emolib import files

    out = tmp_path / "timeline.csv"
    original, calls = os.write, []

    def filling_disk(fd, data):
        calls.append(1)
        if len(calls) == 3:  # header, first chunk, then the second chunk fits only in part
            return original(fd, bytes(data[:len(data) // 2]))
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(fd, data)

    monkeypatch.setattr(files.os, "write", filling_disk)
    with pytest.raises(OSError, match="No space left"):
        V.analyze_video(clip, predictor, out=out, chunk_frames=16, progress=False)
    monkeypatch.undo()
    kept = pd.read_csv(out)  # the first chunk's frames, every row whole
    assert sorted(kept["frame"].unique()) == list(range(16)) and out.read_bytes().endswith(b"\n")
    full, _ = timeline
    resumed = V.analyze_video(clip, predictor, out=out, resume=True, progress=False)
    pd.testing.assert_frame_equal(resumed, full, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(out), full, check_dtype=False)

def test_tracker_bridges_missed_detections_and_starts_new_tracks():
    tracker = V.IoUTracker(max_missed=2)
    assert tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)]) == [1, 2]
    assert tracker.update([(205, 2, 50, 50)]) == [2]  # face 1 missed once
    assert tracker.update([(210, 4, 50, 50)]) == [2]  # ... twice
    assert tracker.update([(4, 0, 50, 50), (214, 5, 50, 50)]) == [1, 2]
    for _ in range(3):
        tracker.update([])
    assert tracker.update([(4, 0, 50, 50)]) == [3]  # gone for three frames: a new person
    assert tracker.update([(400, 0, 50, 50), (60, 0, 50, 50)]) == [4, 3]  # 1.1 face sizes away: still 3
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_smooth_summary_plot_and_contact_sheet(timeline, clip, tmp_path):
    table, _ = timeline
    smoothed = V.smooth(table, 5)
    columns = V.probability_columns(table)
    assert np.allclose(smoothed[columns].sum(axis=1), 1, atol=1e-4)
    assert smoothed[columns].diff().abs().max().max() <= table[columns].diff().abs().max().max()
    window = table[table["track"] == 1][columns].iloc[:4].mean()  # frame 1's centred window: frames 0-3
    assert np.allclose(smoothed[(smoothed["track"] == 1) & (smoothed["frame"] == 1)][columns].iloc[0], window)
    table_summary = V.summary(table)
    assert list(table_summary.index) == [1, 2]
    assert list(table_summary["frames"]) == [FRAMES, FRAMES - len(GAP)]
    names = [c[2:] for c in columns]
    assert np.allclose(table_summary[names].sum(axis=1), 100, atol=0.5)
    figure = V.plot_timeline(smoothed, tmp_path / "timeline.png")
    assert len(figure.axes) == 4 and (tmp_path / "timeline.png").stat().st_size > 20_000
    sheet = V.contact_sheet(clip, table, frames=6, columns=3)
    assert sheet.shape == (2 * (240 + 4), 3 * (320 + 4), 3)  # 320-pixel tiles with a 2-pixel border


def test_cli_writes_timeline_and_plot(clip, tmp_path):
    out, plot = tmp_path / "t.csv", tmp_path / "t.png"
    done = subprocess.run([sys.executable, "-m", "emolib", "video", str(clip), "--every", "5",
                           "--out", str(out), "--plot", str(plot), "--smooth", "3", "--detector", "yunet",
                           "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 track(s)" in done.stdout and "dominant" in done.stdout
    written = pd.read_csv(out)
    assert sorted(written["frame"].unique()) == list(range(0, FRAMES, 5))
    assert plot.stat().st_size > 20_000


def test_a_video_without_faces_gives_an_empty_timeline_with_its_header(tmp_path, predictor, capsys):
    blank = V.write_video(tmp_path / "blank.avi", [np.full((120, 160, 3), 90, np.uint8)] * 6, fps=5)
    out = tmp_path / "timeline.csv"
    table = V.analyze_video(blank, predictor, out=out, progress=False)
    assert table.empty and list(table.columns) == V.timeline_columns(predictor.labels)
    assert out.read_text().strip() == ",".join(V.timeline_columns(predictor.labels))
    with pytest.raises(ValueError, match="no face"):
        V.plot_timeline(table)

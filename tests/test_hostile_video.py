"""Hostile videos (issue 38): truncated files, zero frames, no video stream, a variable frame rate, a 4K
clip, an image named as a video — each a clear error naming the file (nothing written) or a correct
timeline, within a time limit (no hang). The files are made with ffmpeg at test time."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import subprocess
import sys

import hostile_files as H
import pytest

from emolib import video as V

#: seconds any one case may take before it counts as a hang
LIMIT_S = 240


@pytest.fixture(scope="module")
def predictor(yunet_path):
    from emolib.predict import EmotionPredictor

    return EmotionPredictor(detector="yunet")


@pytest.fixture(scope="module")
def photo(photos_dir):
    return photos_dir / "grace_hopper.jpg"


def analyse(case: H.VideoCase, folder, photo, predictor) -> tuple[str, str]:
    """:func:`hostile_files.video_outcome` of :func:`emolib.video.analyze_video` on ``case``'s file."""
    path, out, stderr = case.make(folder, photo), folder / "timeline.csv", io.StringIO()

    def call():
        with contextlib.redirect_stderr(stderr):
            return V.analyze_video(path, predictor, out=out, progress=False)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(call)
        try:
            return H.video_outcome(case, path, out, future.result(timeout=LIMIT_S), stderr=stderr.getvalue())
        except concurrent.futures.TimeoutError:
            return "hang", f"still running after {LIMIT_S} s"
        except BaseException as error:  # noqa: BLE001 - classified: a crash is what this test hunts
            return H.video_outcome(case, path, out, error=error)


@pytest.mark.parametrize("case", H.VIDEO_CASES, ids=[c.name for c in H.VIDEO_CASES])
def test_each_hostile_video_gets_a_clear_error_or_a_correct_timeline(case, tmp_path, photo, predictor):
    got, detail = analyse(case, tmp_path, photo, predictor)
    assert got == case.outcome, detail


def test_variable_frame_rate_times_come_from_the_stream(tmp_path, photo, predictor):
    """Defect: ``time`` was ``frame / average fps``: on a clip at 10 fps then 2 fps, the 12th frame (at
    1.5 s) was put at 1.1 s."""
    clip = H.variable_frame_rate(tmp_path / "vfr.mkv", photo)
    table = V.analyze_video(clip, predictor, progress=False)
    assert table["time"].round(2).tolist() == list(H.VFR_TIMES)
    assert table["frame"].tolist() == list(range(12))


def test_a_file_cut_after_its_index_keeps_every_decoded_frame_and_says_so(tmp_path, photo, predictor, capsys):
    """Defect: a truncated MP4 whose index comes first decoded its first frames and stopped, unsaid."""
    path = H.VIDEO_CASES[1].make(tmp_path, photo)
    table = V.analyze_video(path, predictor, out=tmp_path / "t.csv", progress=False)
    whole = V.analyze_video(tmp_path / "whole-faststart.mp4", predictor, progress=False)
    assert 0 < len(table) < len(whole)
    assert table.equals(whole.iloc[:len(table)])  # the frames before the cut, as in the whole file
    assert "may be truncated" in capsys.readouterr().err


def test_a_refused_video_leaves_an_earlier_timeline_untouched(tmp_path, predictor):
    """A file that opens but yields no frame must not empty an earlier --out of the same name."""
    out = tmp_path / "timeline.csv"
    out.write_text("an earlier timeline\n")
    blank = V.write_video(tmp_path / "blank.avi", [H.np.full((120, 160, 3), 90, H.np.uint8)] * 2, fps=5)
    capture, _ = V.open_video(blank)
    capture.release()
    cut = H.truncated(blank, tmp_path / "cut.avi", 0.02)
    with pytest.raises((ValueError, OSError), match="cut.avi"):
        V.analyze_video(cut, predictor, out=out, progress=False)
    assert out.read_text() == "an earlier timeline\n"


@pytest.mark.parametrize("make, says", [
    (H.audio_only, "not a readable video"),
    (lambda path: path.write_bytes(H.face_png()) and path, "is a PNG image, not a video: use `emolib"),
])
def test_the_video_command_refuses_with_one_line(tmp_path, make, says):
    path = make(tmp_path / "input.mp4")
    command = [sys.executable, "-m", "emolib", "video", str(path), "--out", str(tmp_path / "t.csv")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=LIMIT_S)
    assert done.returncode == 2 and says in done.stderr and str(path) in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "t.csv").exists()

"""Kill campaign (issue 38): SIGKILL every long job at seeded random moments, run it again, compare.

    python bench/crash.py [--points 50] [--chain 3] [--seed 0] [--jobs train,video,...] [--json]

Jobs, on tiny inputs built in a scratch folder (``--work``, default a temporary one):

- ``train``: ``emolib train`` (simple_cnn, 2 epochs, FER2013 at most 5 faces per class); after a kill
  the same command with ``--resume RUN_DIR`` (without, while no run directory has its params.json).
- ``experiments``: ``emolib experiments run GRID`` (local), a grid of three runs of a tiny notebook.
- ``experiments-ray``: the same with ``--ray --jobs 2``, on a local Ray head (2 CPUs) started once for
  the campaign: a kill stops the driver while Ray's workers run the notebooks.
- ``predict-jsonl``, ``predict-parquet``: ``emolib predict DIR --out`` over 12 photos, 2 per chunk
  (ONNX Runtime where the tiny model can be exported, as for ``video``).
- ``video``: ``emolib video CLIP --out timeline.csv --resume`` over a 3-second generated clip of two faces.
- ``cache``: ``emolib data`` on a folder dataset, into an empty cache: the first decode.

A kill point is a seeded random moment of one run: every other one a time after the start (uniform up
to the uninterrupted run's duration, SIGKILL from outside), the others the N-th file write of the run
(N uniform up to the writes of the uninterrupted run): there the process SIGKILLs itself, with an atomic
write's temporary file complete but not yet renamed or just after the rename, with an append half or
wholly written. After a kill the job runs again as a user would; up to ``--chain`` kills follow one
another, then the job runs to its end and its outputs are compared with the uninterrupted reference's:
records, rows, cache files, training history and model; every output file must parse (JSON, CSV,
Parquet, .npy, .keras, .h5, PNG) and no temporary or pending file may be left.

A kill point counts as resumed OK when the run after it did not fail and the comparison at the end of
its chain found nothing. Processes the killed one leaves in its process group, and notebook kernels (in
sessions of their own, found by an environment variable every process of the campaign inherits, Ray's
workers included), are counted as orphans if still alive 15 s after the run ended, then killed. Prints
a markdown table (``--json``: one JSON object).
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOLIB_SHARED", REPO.parent / "shared")).resolve()
PHOTOS = SHARED / "data" / "photos"
FER2013 = SHARED / "data" / "fer2013"
YUNET = SHARED / "models" / "face_detection_yunet_2023mar.onnx"
ORPHAN_GRACE_S = 15
#: set to the campaign's scratch folder in every process the campaign starts (see left_kernels)
CAMPAIGN_VARIABLE = "EMOLIB_CRASH_CAMPAIGN"

# ---------------------------------------------------------------------------------------------------
# The child: an emolib command whose file writes are counted, the N-th one a SIGKILL
# ---------------------------------------------------------------------------------------------------


def child(argv: list[str]) -> int:
    """Run ``emolib ARGV`` with counted writes (``CRASH_KILL_AT=N:PHASE``, ``CRASH_COUNT=FILE``)."""
    kill_at, _, phase = os.environ.get("CRASH_KILL_AT", "0:").partition(":")
    kill_at = int(kill_at)
    writes = [0]

    def hit() -> bool:
        writes[0] += 1
        return writes[0] == kill_at

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if os.environ.get("CRASH_COUNT"):
        atexit.register(lambda: Path(os.environ["CRASH_COUNT"]).write_text(str(writes[0])))
    from emolib import files  # before anything imports atomic_path from it

    original_atomic = files.atomic_path

    @contextmanager
    def atomic_path(path):
        kill = hit()
        with original_atomic(path) as tmp:
            yield tmp
            if kill and phase == "temporary":
                die()
        if kill:
            die()

    files.atomic_path = atomic_path
    if argv[0] == "predict":
        from emolib import folder_predict

        original_jsonl = folder_predict.JsonlOutput.write

        def jsonl_write(self, records):
            kill = hit()
            if kill and phase == "torn":
                original_jsonl(self, records[: len(records) // 2])
                with open(self.path, "a", encoding="utf-8") as file:
                    file.write(json.dumps(records[len(records) // 2])[:30])
                    file.flush()
                    os.fsync(file.fileno())
                die()
            original_jsonl(self, records)
            if kill:
                die()

        folder_predict.JsonlOutput.write = jsonl_write
    if argv[0] == "video":
        from emolib.video import timeline

        original_csv = timeline._CsvAppender._write

        def csv_write(self, text):
            kill = hit()
            original_csv(self, text[: len(text) // 2] if kill and phase == "torn" else text)
            if kill:
                die()

        timeline._CsvAppender._write = csv_write
    from emolib import commands

    return commands.main(argv)


# ---------------------------------------------------------------------------------------------------
# Running a job, maybe killing it
# ---------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    seconds: float
    killed: bool
    code: int | None
    writes: int | None
    orphans: int
    stderr: str


def run_once(args: list[str], env: dict, kill_after: float | None = None, kill_at_write: str | None = None,
             count_file: Path | None = None, timeout: float = 900) -> Outcome:
    """Run ``emolib ARGS`` in the child; SIGKILL it after ``kill_after`` s, or let it kill itself at the
    write ``kill_at_write`` (``N:PHASE``)."""
    env = {**env, "CRASH_KILL_AT": kill_at_write or "0:"}
    if count_file is not None:
        env["CRASH_COUNT"] = str(count_file)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen([sys.executable, __file__, "--child", *args], env=env,
                                   stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        killed_here = False
        try:
            process.wait(timeout=kill_after if kill_after is not None else timeout)
        except subprocess.TimeoutExpired:
            if kill_after is None:
                raise
            process.kill()
            process.wait()
            killed_here = True
        seconds = time.perf_counter() - started
        orphans = _reap_group(process.pid)
        stderr.seek(0)
        text = stderr.read().decode("utf-8", "replace")
    killed = killed_here or process.returncode == -signal.SIGKILL
    writes = int(count_file.read_text()) if count_file is not None and count_file.is_file() else None
    return Outcome(seconds, killed, None if killed else process.returncode, writes, orphans, text[-2000:])


def _reap_group(group: int) -> int:
    """Kill and count the processes left in ``group`` ORPHAN_GRACE_S after its leader ended."""
    return _kill_left(lambda: _processes(lambda process: _stat(process)[2] == str(group)))


def left_kernels(mark: str) -> int:
    """Kill and count the notebook kernels started under the campaign ``mark`` (an environment value
    every process of the campaign inherits) still alive ORPHAN_GRACE_S after their run ended: a kernel
    starts a session of its own, so the process-group check does not see it."""
    wanted = f"{CAMPAIGN_VARIABLE}={mark}".encode()
    return _kill_left(lambda: _processes(
        lambda process: b"ipykernel" in (process / "cmdline").read_bytes()
        and wanted in (process / "environ").read_bytes().split(b"\0")))


def _kill_left(alive) -> int:
    """Wait up to ORPHAN_GRACE_S for ``alive()`` (pids) to be empty; SIGKILL and count what is left."""
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while (pids := alive()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def _processes(wanted) -> list[int]:
    """The pids of this machine's processes whose ``/proc/PID`` folder ``wanted`` accepts."""
    pids = []
    for process in Path("/proc").glob("[0-9]*"):
        try:
            if wanted(process):
                pids.append(int(process.name))
        except (OSError, IndexError):  # ended meanwhile
            continue
    return pids


def _stat(process: Path) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name: state, ppid, pgrp, ..."""
    return (process / "stat").read_text().rsplit(")", 1)[1].split()


# ---------------------------------------------------------------------------------------------------
# Checks: every output file whole, no temporary or pending file left
# ---------------------------------------------------------------------------------------------------


def audit(folder: Path) -> list[str]:
    """Problems of the files under ``folder``: leftovers of an interrupted write, files that do not parse."""
    problems = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.name
        if ".tmp-" in name or name.startswith("pending-"):
            problems.append(f"left behind: {path.relative_to(folder)}")
            continue
        try:
            _parse(path)
        except Exception as error:  # noqa: BLE001  (any failure to read is the finding)
            problems.append(f"corrupt: {path.relative_to(folder)}: {type(error).__name__}: {error}"[:300])
    return problems


def _parse(path: Path) -> None:
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".weights.h5") else path.suffix
    if suffix in (".json", ".ipynb"):
        json.loads(path.read_text(encoding="utf-8"))
    elif suffix == ".jsonl":
        text = path.read_text(encoding="utf-8")
        assert not text or text.endswith("\n"), "torn last line"
        for line in text.splitlines():
            json.loads(line)
    elif suffix == ".csv":
        import pandas as pd

        pd.read_csv(path)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.read_table(path)
    elif suffix == ".npy":
        import numpy as np

        array = np.load(path, mmap_mode="r")
        assert array.size == 0 or int(array.reshape(-1)[-1]) >= 0
    elif suffix == ".keras":
        import zipfile

        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None, "bad member"
    elif suffix in (".h5", ".weights.h5"):
        import h5py

        with h5py.File(path, "r"):
            pass
    elif suffix == ".png":
        from PIL import Image

        with Image.open(path) as image:
            image.verify()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# The jobs
# ---------------------------------------------------------------------------------------------------


@dataclass
class Job:
    """A job: how to start its state, the command a user runs (again), and how to compare outputs."""

    name: str
    inputs: Path
    env: dict = field(default_factory=dict)

    def prepare(self, state: Path) -> None:
        state.mkdir(parents=True)

    def command(self, state: Path) -> list[str]:
        raise NotImplementedError

    def compare(self, state: Path, reference: Path) -> tuple[list[str], int, int]:
        """``(problems, records, lost records)`` of ``state``'s outputs against ``reference``'s."""
        raise NotImplementedError


class TrainJob(Job):
    def command(self, state):
        run_dirs = [p for p in (state / "runs").glob("*") if (p / "params.json").is_file()]
        return ["train", "--dataset", "fer2013", "--data", str(FER2013), "--max-per-class", "5",
                "--backbone", "simple_cnn", "--epochs", "2", "--batch-size", "16", "--output",
                str(state / "runs"), *(["--resume", str(run_dirs[0])] if run_dirs else [])]

    def compare(self, state, reference):
        import keras
        import pandas as pd

        import emolib.models  # noqa: F401  (registers emolib's layers, which model.keras files use)

        problems = audit(state)
        run_dirs = sorted(p for p in (state / "runs").glob("*") if (p / "params.json").is_file())
        if len(run_dirs) != 1:
            return problems + [f"{len(run_dirs)} run directories"], 0, 2
        run_dir = run_dirs[0]
        problems += [f"run directory without params.json: {p.name}" for p in (state / "runs").glob("*")
                     if p not in run_dirs]
        (ref_dir,) = list((reference / "runs").glob("*"))
        if not (run_dir / "model.json").is_file():
            return problems + ["not finished (no model.json)"], 0, 2
        history = pd.read_csv(run_dir / "history.csv")
        expected = pd.read_csv(ref_dir / "history.csv")
        if history["epoch"].tolist() != expected["epoch"].tolist():
            problems.append(f"history epochs {history['epoch'].tolist()} != {expected['epoch'].tolist()}")
        state_json = json.loads((run_dir / "checkpoint" / "state.json").read_text())
        if [row["epoch"] for row in state_json["history"]] != history["epoch"].tolist():
            problems.append("state.json and history.csv disagree")
        card = json.loads((run_dir / "model.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        if card["epochs_run"] != len(expected) or metrics["epochs_run"] != len(expected):
            problems.append(f"epochs_run {card['epochs_run']}/{metrics['epochs_run']} != {len(expected)}")
        best = metrics["best_epoch"]
        if abs(metrics["val"]["accuracy"] - history.loc[best, "val_accuracy"]) > 1e-6:
            problems.append(f"the model is not the best epoch's: val accuracy {metrics['val']['accuracy']} "
                            f"!= {history.loc[best, 'val_accuracy']} (epoch {best})")
        keras.saving.load_model(run_dir / "model.keras", compile=False)

        def steps(directory):
            model = keras.saving.load_model(directory / "checkpoint" / "last.keras")
            return int(keras.ops.convert_to_numpy(model.optimizer.iterations))

        if steps(run_dir) != steps(ref_dir):
            problems.append(f"optimizer steps {steps(run_dir)} != {steps(ref_dir)} (an epoch trained twice?)")
        lost = max(0, len(expected) - len(history))
        return problems, len(history), lost


def _records_by_path(records) -> dict:
    return {record["path"]: record for record in records}


def _same_record(a: dict, b: dict) -> bool:
    if (a["error"], a["faces_detected"], len(a["predictions"])) != (b["error"], b["faces_detected"],
                                                                   len(b["predictions"])):
        return False
    for x, y in zip(a["predictions"], b["predictions"]):
        if x["emotion"] != y["emotion"] or dict(x["box"]) != dict(y["box"]):
            return False
        if any(abs(x["probabilities"][k] - dict(y["probabilities"])[k]) > 1e-4 for k in x["probabilities"]):
            return False
    return True


class PredictJob(Job):
    suffix = ".jsonl"

    def command(self, state):
        return ["predict", str(self.inputs / "photos"), "--out", str(state / f"predictions{self.suffix}"),
                "--model", str(self.inputs / "model"), "--detector", "yunet", "--chunk", "2"]

    def compare(self, state, reference):
        from emolib import folder_predict

        problems = audit(state)
        out = state / f"predictions{self.suffix}"
        records = folder_predict.open_output(out).read() if out.exists() else []
        expected = _records_by_path(folder_predict.open_output(reference / out.name).read())
        got = _records_by_path(records)
        if len(got) != len(records):
            problems.append(f"{len(records) - len(got)} duplicate record(s)")
        lost = sorted(set(expected) - set(got))
        problems += [f"lost: {path}" for path in lost]
        problems += [f"differs: {path}" for path in sorted(set(expected) & set(got))
                     if not _same_record(got[path], expected[path])]
        problems += [f"unexpected: {path}" for path in sorted(set(got) - set(expected))]
        return problems, len(records), len(lost)


class ParquetJob(PredictJob):
    suffix = ".parquet"


class VideoJob(Job):
    def command(self, state):
        return ["video", str(self.inputs / "clip.avi"), "--out", str(state / "timeline.csv"), "--resume",
                "--model", str(self.inputs / "model"), "--detector", "yunet", "--quiet"]

    def compare(self, state, reference):
        import numpy as np
        import pandas as pd

        problems = audit(state)
        if not (state / "timeline.csv").is_file():
            return problems + ["no timeline.csv"], 0, len(pd.read_csv(reference / "timeline.csv"))
        got, expected = pd.read_csv(state / "timeline.csv"), pd.read_csv(reference / "timeline.csv")
        keys = ["frame", "track", "x", "y", "w", "h", "emotion"]
        rows = set(map(tuple, got[keys].astype(str).values))
        wanted = set(map(tuple, expected[keys].astype(str).values))
        lost = len(wanted - rows)
        if lost:
            problems.append(f"{lost} row(s) lost")
        if len(rows - wanted):
            problems.append(f"{len(rows - wanted)} row(s) not in the reference")
        if len(got) != len(rows):
            problems.append(f"{len(got) - len(rows)} duplicate row(s)")
        numbers = [c for c in expected.columns if c not in keys and c not in ("time", "uncertain")]
        if not lost and len(got) == len(expected) and not np.allclose(
                got[numbers].to_numpy(float), expected[numbers].to_numpy(float), atol=1e-4):
            problems.append("probabilities differ")
        return problems, len(got), lost


class CacheJob(Job):
    def command(self, state):
        return ["data", "--dataset", "folders", "--data", str(self.inputs / "faces"), "--json"]

    def prepare(self, state):
        super().prepare(state)
        self.env = {**self.env, "EMOLIB_CACHE": str(state / "cache")}

    def compare(self, state, reference):
        problems = audit(state)

        def files(folder):
            return {p.name: sha256(p) for p in sorted((folder / "cache").glob("*"))}

        got, expected = files(state), files(reference)
        lost = sorted(set(expected) - set(got))
        problems += [f"missing cache file {name}" for name in lost]
        problems += [f"extra cache file {name}" for name in sorted(set(got) - set(expected))]
        problems += [f"cache file differs: {name}" for name in sorted(set(got) & set(expected))
                     if got[name] != expected[name]]
        return problems, len(got), len(lost)


def _json_or(path: Path, default):
    return json.loads(path.read_text()) if path.is_file() else default


class ExperimentsJob(Job):
    def command(self, state):
        return ["experiments", "run", str(self.inputs / "grid.yaml"), "--output", str(state / "out")]

    def compare(self, state, reference):
        problems = audit(state)
        grid = "crash"
        expected = sorted(p for p in (reference / "out" / grid).iterdir() if p.is_dir())
        lost = 0
        for ref_run in expected:
            run = state / "out" / grid / ref_run.name
            record = _json_or(run / "experiment.json", {})
            if record.get("status") != "ok":
                problems.append(f"{run.name}: status {record.get('status')}")
            result, wanted = run / "result.json", ref_run / "result.json"
            if not result.is_file() or result.read_text() != wanted.read_text():
                problems.append(f"{run.name}: result.json missing or different")
                lost += 1
            executed = _json_or(run / "notebook.ipynb", {"cells": []})
            if not all(c.get("execution_count") for c in executed["cells"] if c["cell_type"] == "code"):
                problems.append(f"{run.name}: notebook.ipynb not fully executed")
        moved = state / "out" / grid / ".old"
        if moved.exists():
            problems.append(f"runs moved aside: {sorted(p.name for p in moved.iterdir())}")
        return problems, len(expected), lost


class RayExperimentsJob(ExperimentsJob):
    """The grid on Ray (``env`` holds ``RAY_ADDRESS``)."""

    def command(self, state):
        return [*super().command(state), "--ray", "--jobs", "2"]


JOBS = {"train": TrainJob, "experiments": ExperimentsJob, "experiments-ray": RayExperimentsJob,
        "predict-jsonl": PredictJob, "predict-parquet": ParquetJob, "video": VideoJob, "cache": CacheJob}


# ---------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------

NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None, "outputs": [],
         "source": "value = 1\nrun_dir = None"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "import time\nfrom pathlib import Path\n\nfrom emolib.files import write_json\n\n"
                   "time.sleep(1)\nwrite_json(Path(run_dir) / 'result.json', {'value': value, "
                   "'square': value * value})"},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def make_inputs(folder: Path) -> None:
    """The tiny model, photos, clip, folder dataset and grid every job reads (never written by a job)."""
    import cv2
    import numpy as np
    from PIL import Image

    from emolib import labels, models, video

    model = models.build_model("simple_cnn", num_classes=7, input_size=48, channels=1, seed=0)
    models.save_model(model, folder / "model", models.make_card(model, backbone="simple_cnn",
                                                               labels=labels.EMOTIONS_7, name="crash"))
    try:  # predict and video then run on ONNX Runtime: no Keras start-up in each of their runs
        from emolib.runs.export import export_onnx

        export_onnx(folder / "model", faces=np.random.default_rng(0).integers(0, 256, (8, 48, 48, 1),
                                                                              dtype=np.uint8))
    except ImportError:
        pass
    photos = sorted(PHOTOS.glob("*.*"))
    (folder / "photos").mkdir()
    for photo in photos:
        rgb = np.asarray(Image.open(photo).convert("RGB"))
        for scale in (1.0, 0.75, 0.5):
            for mirrored in (False, True):
                image = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                image = image[:, ::-1] if mirrored else image
                Image.fromarray(np.ascontiguousarray(image)).save(
                    folder / "photos" / f"{photo.stem}-{int(scale * 100)}{'-m' if mirrored else ''}.png")
    video.make_demo_clip(folder / "clip.avi", photos, seconds=3, fps=10, size=(480, 360), face_height=150)
    for split, per_class in (("train", 60), ("test", 20)):
        for class_dir in sorted((FER2013 / split).iterdir()):
            target = folder / "faces" / split / class_dir.name
            target.mkdir(parents=True)
            for source in sorted(class_dir.iterdir())[:per_class]:
                shutil.copyfile(source, target / source.name)
    (folder / "tiny.ipynb").write_text(json.dumps(NOTEBOOK))
    (folder / "grid.yaml").write_text(
        f"name: crash\nexperiments:\n  - notebook: {folder / 'tiny.ipynb'}\n"
        "    grid:\n      value: [1, 2, 3]\n")


# ---------------------------------------------------------------------------------------------------
# The campaign
# ---------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    job: str
    points: int = 0
    during_write: int = 0
    resumed_ok: int = 0
    mismatches: int = 0
    bad_files: int = 0
    records: int = 0
    lost: int = 0
    orphans: int = 0
    failed_reruns: int = 0
    reference_s: float = 0.0
    seconds: float = 0.0
    findings: list = field(default_factory=list)


def campaign(job: Job, work: Path, points: int, chain: int, rng: random.Random) -> Tally:
    """Kill ``job`` ``points`` times (chains of at most ``chain`` kills), comparing after each chain."""
    tally = Tally(job.name)
    started = time.perf_counter()
    reference = work / f"{job.name}-reference"
    job.prepare(reference)
    outcome = run_once(job.command(reference), {**os.environ, **job.env}, count_file=work / "count")
    if outcome.killed or outcome.code not in (0, None):
        raise RuntimeError(f"{job.name}: the reference run failed ({outcome.code}):\n{outcome.stderr}")
    tally.reference_s, total_writes = outcome.seconds, outcome.writes or 1
    (work / "count").unlink()
    attempt = 0
    while tally.points < points and attempt < 4 * points:
        state = work / f"{job.name}-{attempt}"
        job.prepare(state)
        kills_here, failed = 0, False
        while True:
            attempt += 1
            timed = (tally.points + kills_here) % 2 == 0
            kill = {"kill_after": rng.uniform(0.0, tally.reference_s)} if timed else {
                "kill_at_write": f"{rng.randint(1, total_writes)}:"
                                 f"{rng.choice(['temporary', 'renamed', 'torn', 'whole'])}"}
            last = kills_here >= chain or tally.points + kills_here >= points
            outcome = run_once(job.command(state), {**os.environ, **job.env}, **({} if last else kill))
            tally.orphans += outcome.orphans + left_kernels(os.environ[CAMPAIGN_VARIABLE])
            if outcome.killed:
                kills_here += 1
                tally.during_write += not timed
                continue
            if outcome.code != 0:
                failed = True
                tally.failed_reruns += 1
                tally.findings.append(f"a run after a kill failed ({outcome.code}): {outcome.stderr[-400:]}")
                outcome = run_once(job.command(state), {**os.environ, **job.env})  # as a user would, again
                if outcome.code != 0:
                    tally.findings.append(f"and again ({outcome.code}): {outcome.stderr[-400:]}")
            break
        problems, records, lost = job.compare(state, reference)
        tally.points += kills_here
        tally.mismatches += len(problems)
        tally.bad_files += sum(p.startswith(("left behind", "corrupt")) for p in problems)
        tally.records += records
        tally.lost += lost
        tally.findings += problems
        if not problems and not failed:
            tally.resumed_ok += kills_here
        shutil.rmtree(state, ignore_errors=True)
        print(f"{job.name}: {tally.points} kill points, {tally.resumed_ok} resumed OK, {tally.mismatches} "
              f"mismatches, {tally.lost} lost records, {tally.orphans} orphans, {tally.failed_reruns} failed "
              f"re-runs ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    tally.seconds = time.perf_counter() - started
    return tally


def markdown(tallies: list[Tally]) -> str:
    lines = ["| job | kill points | of which in a write | resumed OK | mismatches | corrupt or half-written "
             "files | records checked | lost records | orphan processes | reference run (s) | campaign (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in tallies:
        lines.append(f"| {t.job} | {t.points} | {t.during_write} | {t.resumed_ok} | {t.mismatches} | "
                     f"{t.bad_files} | {t.records} | {t.lost} | {t.orphans} | {t.reference_s:.1f} | "
                     f"{t.seconds:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=50, help="kill points per job")
    parser.add_argument("--chain", type=int, default=3, help="kills in a row before a run is let finish")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated, of {', '.join(JOBS)}")
    parser.add_argument("--work", help="scratch folder (default: a temporary one, removed at the end)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    names = args.jobs.split(",")
    unknown = sorted(set(names) - set(JOBS))
    if unknown:
        parser.error(f"unknown job(s) {unknown}; expected {', '.join(JOBS)}")
    os.environ.setdefault("PYTHONPATH", str(REPO))
    work = Path(args.work or tempfile.mkdtemp(prefix="emolib-crash-"))
    os.environ[CAMPAIGN_VARIABLE] = str(work)  # inherited by every run, a Ray head and its workers
    work.mkdir(parents=True, exist_ok=True)
    try:
        inputs = work / "inputs"
        if not inputs.is_dir():
            make_inputs(inputs)
        rng = random.Random(args.seed)
        tallies = []
        with ExitStack() as stack:
            for name in names:
                job = JOBS[name](name, inputs)
                if isinstance(job, RayExperimentsJob):
                    from emolib.cluster import local_cluster

                    head = stack.enter_context(local_cluster(2, work / "ray-head.log"))
                    job.env = {"RAY_ADDRESS": head.address}
                tallies.append(campaign(job, work, args.points, args.chain, rng))
                print(markdown(tallies[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps([t.__dict__ for t in tallies], indent=2))
    else:
        print(markdown(tallies))
        for t in tallies:
            for finding in t.findings[:20]:
                print(f"- {t.job}: {finding}")
    return 0 if all(not t.mismatches and not t.failed_reruns and not t.orphans for t in tallies) else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child(sys.argv[2:]))
    sys.exit(main())

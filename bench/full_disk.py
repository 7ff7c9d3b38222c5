"""A full disk (issue 38): jobs writing to a small tmpfs stop with a clear message, keep what they wrote
before, and finish when run again once space is freed.

    sudo python bench/full_disk.py        (needs ``mount -t tmpfs``: root; elsewhere it says so and stops)

- ``train``: ``emolib train`` (simple_cnn, 2 epochs, FER2013 at most 5 faces per class) into a 20 MB
  tmpfs: epoch 1's checkpoint fits, epoch 2's does not (the old checkpoint stays until the new one is
  whole). Then the tmpfs grows to 64 MB (``mount -o remount,size=``) and the same command with
  ``--resume`` runs; the run must be complete, its history continuous, every file whole.
- ``predict-jsonl``: ``emolib predict DIR --out`` (the 12 photos of bench/crash.py) into a tmpfs with one
  free page (a filler file takes the rest); then the filler is removed and the same command runs; its
  records must be those of a run on an ordinary disk.

Without root the same failures are simulated in tests (test_train.py, test_folder_predict.py,
test_files.py). Prints a markdown table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from crash import FER2013, PredictJob, audit, make_inputs, run_once

HINT = "the disk is full"


def mount_tmpfs(folder: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``folder``; None, or why it cannot be done."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"mount exited {done.returncode}")


def remount(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def train_case(disk: Path) -> dict:
    env = dict(os.environ)
    command = ["train", "--dataset", "fer2013", "--data", str(FER2013), "--max-per-class", "5", "--backbone",
               "simple_cnn", "--epochs", "2", "--batch-size", "16", "--output", str(disk / "runs")]
    first = run_once(command, env)
    (run_dir,) = list((disk / "runs").iterdir())
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    kept = {"epochs in the checkpoint": state["epoch"], "problems": audit(disk)}
    remount(disk, "64m")
    again = run_once([*command, "--resume", str(run_dir)], env)
    history = (run_dir / "history.csv").read_text().splitlines()[1:]
    return {"job": "train", "filled": f"checkpoint of epoch {state['epoch'] + 1}",
            "message": first.code == 2 and HINT in first.stderr, "stderr": first.stderr[-600:],
            "intact": state["epoch"] == 1 and not kept["problems"], "kept": kept,
            "resumed": again.code == 0 and (run_dir / "model.json").is_file() and len(history) == 2
            and not audit(disk)}


def predict_case(disk: Path, inputs: Path, work: Path) -> dict:
    job = PredictJob("predict-jsonl", inputs)
    reference = work / "reference"
    job.prepare(reference)
    run_once(job.command(reference), dict(os.environ))
    filler = disk / "filler"
    free = os.statvfs(disk)
    filler.write_bytes(b"\0" * (free.f_bavail * free.f_frsize - free.f_frsize))  # one page left
    first = run_once(job.command(disk), dict(os.environ))
    out = disk / "predictions.jsonl"
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    whole = (not text or text.endswith("\n")) and all(json.loads(line) for line in text.splitlines())
    filler.unlink()
    again = run_once(job.command(disk), dict(os.environ))
    problems, records, lost = job.compare(disk, reference)
    return {"job": "predict-jsonl", "filled": f"predictions.jsonl after {len(text.splitlines())} records",
            "message": first.code == 2 and HINT in first.stderr, "stderr": first.stderr[-600:],
            "intact": whole and not audit(disk), "resumed": again.code == 0 and not problems,
            "problems": problems}


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="emolib-full-disk-"))
    mounted = []
    try:
        why = mount_tmpfs(work / "probe", "1m")
        if why is not None:
            print(f"cannot mount a tmpfs here ({why}): the full disk is simulated in tests/test_train.py, "
                  "test_folder_predict.py and test_files.py instead")
            return 0
        mounted.append(work / "probe")
        inputs = work / "inputs"
        make_inputs(inputs)
        results = []
        for name, size in (("train", "20m"), ("predict", "1m")):
            disk = work / name
            mount_tmpfs(disk, size)
            mounted.append(disk)
            results.append(train_case(disk) if name == "train" else predict_case(disk, inputs, work))
    finally:
        for folder in mounted:
            subprocess.run(["umount", str(folder)], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print("| job | the disk filled at | stopped with a clear message | what was written before intact | "
          "finished after space was freed |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['job']} | {r['filled']} | {'yes' if r['message'] else 'NO'} | "
              f"{'yes' if r['intact'] else 'NO'} | {'yes' if r['resumed'] else 'NO'} |")
    for r in results:
        print(f"\n{r['job']}: the command said:\n" + "\n".join(
            "    " + line for line in r["stderr"].strip().splitlines() if "emolib" in line))
        if not (r["message"] and r["intact"] and r["resumed"]):
            print(json.dumps(r, indent=2, default=str))
    return 0 if all(r["message"] and r["intact"] and r["resumed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

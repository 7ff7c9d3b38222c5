"""nbval executes these notebooks on their tiny defaults: their run directories go to a temporary folder.

``emolib.experiments.runs_dir`` honours ``$EMOLIB_RUNS``, so CI runs do not pile up in results/runs (and
06-compare-runs then compares the runs the other notebooks just made).
"""

from __future__ import annotations

import os
import shutil
import tempfile

_created: list[str] = []


def pytest_configure(config):
    if not os.environ.get("EMOLIB_RUNS"):
        os.environ["EMOLIB_RUNS"] = tempfile.mkdtemp(prefix="emolib-nbval-runs-")
        _created.append(os.environ["EMOLIB_RUNS"])


def pytest_unconfigure(config):
    for path in _created:
        shutil.rmtree(path, ignore_errors=True)

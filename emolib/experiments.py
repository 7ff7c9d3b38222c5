"""Experiments: notebooks run by papermill over a parameter grid, and the comparison of finished runs.

A *grid* is a YAML file::

    name: quick                      # optional; default: the file's stem → <output>/quick/
    defaults:                        # optional; given to every notebook that declares the parameter
      dataset: fer2013
      max_per_class: 60
    experiments:
      - notebook: notebooks/02-simple-cnn.ipynb   # relative to the grid file, the cwd or the repo root
        name: baseline               # optional; default: the notebook's stem
        parameters: {epochs: 3}      # fixed values (must be declared in the notebook's parameters cell)
        grid:                        # lists: one run per combination (cartesian product)
          backbone: [simple_cnn, compact_vgg]

Every combination becomes one run with a deterministic directory
``<output>/<grid name>/<experiment name>[--key=value...]/``; the notebook receives it as its
``run_dir`` parameter, and the executed notebook (``notebook.ipynb``) and the runner's record
(``experiment.json``: parameters, status, error, seconds, command) are kept in it, beside the files
:func:`emolib.train.train` writes. Running a grid again skips its finished runs and resumes an
interrupted training run from its checkpoint; a run whose parameters changed since (or every run, with
``force``) starts afresh, its old directory moved to ``<output>/<grid name>/.old/``. A string value may
contain ``${output}``, replaced by the grid's output folder (e.g. for the comparison notebook).

:func:`runs_table` turns run directories into one comparison table (pandas), :func:`plot_runs` charts
it, and the notebook helpers (:func:`load_data`, :func:`show_run`, :func:`plot_samples`,
:func:`plot_augmented`) keep the notebooks short.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from emolib import paths
from emolib.files import write_atomic, write_json

REPO_ROOT = paths.project_dir()
RECORD_FILE = "experiment.json"
NOTEBOOK_FILE = "notebook.ipynb"
OUTPUT_PLACEHOLDER = "${output}"
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")

# ---------------------------------------------------------------------------------------------------
# Paths (notebooks run with the notebook folder as cwd: resolve from the repo root instead)
# ---------------------------------------------------------------------------------------------------


def resolve_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded; a relative path is taken from the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def shared_dir() -> Path:
    """The shared data folder: ``$EMOLIB_SHARED``, default ``../shared`` next to the repository."""
    return resolve_path(os.environ.get("EMOLIB_SHARED") or REPO_ROOT.parent / "shared")


def data_root(dataset: str, data: str | os.PathLike | None = None) -> Path:
    """Dataset folder: ``data`` if given (relative: from the repo root), else ``<shared>/data/<dataset>``."""
    return resolve_path(data) if data else shared_dir() / "data" / dataset


def runs_dir(output: str | os.PathLike | None = None) -> Path:
    """Where new run directories go: ``output``, else ``$EMOLIB_RUNS``, else ``<repo>/results/runs``."""
    return resolve_path(output or os.environ.get("EMOLIB_RUNS") or "results/runs")


# ---------------------------------------------------------------------------------------------------
# Notebook helpers
# ---------------------------------------------------------------------------------------------------


def load_data(dataset: str = "fer2013", data: str | os.PathLike | None = None, input_size: int = 48,
              channels: int = 1, max_per_class: int | None = None, fraction: float | None = None,
              seed: int = 0, val_fraction: float = 0.1, test_split: str | None = "test", **options):
    """Train / validation / test splits for a notebook, as :func:`emolib.train.load_data` returns them.

    Parameters
    ----------
    dataset, data : dataset format and folder (``data=None``: the shared copy, see :func:`data_root`).
    input_size, channels : decoded image side and channels.
    max_per_class : int, optional
        Keep at most this many training images per class (a quarter of it for validation and test).
    fraction : float, optional
        Then keep this fraction of each class of every split: a small subset that keeps the class
        imbalance (``max_per_class`` flattens it).
    """
    from emolib import data as D
    from emolib import train as T

    root = data_root(dataset, data)
    train, val, test, info = T.load_data(dataset, root, input_size, channels, val_fraction, max_per_class,
                                         seed, test_split, **options)
    if fraction:
        train, val = (D.limit_per_class(s, fraction=fraction, seed=seed) for s in (train, val))
        test = None if test is None else D.limit_per_class(test, fraction=fraction, seed=seed)
        info["fraction"] = fraction
    return train, val, test, info


def split_counts(**splits):
    """Images per class (rows) for each named split (columns), with a total row: ``split_counts(train=s)``."""
    import pandas as pd

    from emolib import data as D

    table = pd.DataFrame({name: D.class_counts(s.labels, s.classes) for name, s in splits.items()
                          if s is not None})
    table.loc["total"] = table.sum()
    return table


def plot_samples(split, per_class: int = 6, seed: int = 0, title: str = "Samples per class"):
    """A grid of random faces: one row per class, ``per_class`` columns."""
    import matplotlib.pyplot as plt
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = len(split.classes)
    fig, axes = plt.subplots(rows, per_class, figsize=(1.3 * per_class, 1.3 * rows), squeeze=False)
    for r, name in enumerate(split.classes):
        index = np.flatnonzero(split.labels == r)
        chosen = rng.choice(index, size=min(per_class, len(index)), replace=False) if len(index) else []
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(chosen):
                image = split.images[chosen[c]]
                ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_augmented(images, augment=True, copies: int = 3, seed: int = 0):
    """The first images (top row) and ``copies`` rows of their randomly augmented versions."""
    import keras
    import matplotlib.pyplot as plt
    import numpy as np

    from emolib import models as M

    images = np.asarray(images, dtype="float32")
    augmentation = M.augment_layer(augment, seed)
    rows = [images] + [keras.ops.convert_to_numpy(augmentation(images, training=True)) if augmentation
                       else images for _ in range(copies)]
    fig, axes = plt.subplots(len(rows), len(images), figsize=(1.3 * len(images), 1.3 * len(rows)),
                             squeeze=False)
    for r, batch in enumerate(rows):
        for c, image in enumerate(batch):
            ax = axes[r][c]
            ax.imshow(np.clip(image, 0, 255).astype("uint8").squeeze(), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel("original" if r == 0 else f"augmented {r}")
    fig.tight_layout()
    return fig


def show_run(run_dir: str | os.PathLike) -> dict:
    """Display a run inline (headline metrics, learning curves, confusion matrix, report); return metrics."""
    from IPython.display import Image, Markdown, display

    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    split = metrics["evaluated_split"]
    scores = ", ".join(f"{name.replace('_', ' ')} **{metrics[split][name]:.3f}**" for name in METRICS)
    display(Markdown(f"`{run_dir.name}` — {split} split ({metrics[split]['samples']} images): {scores}; "
                     f"best epoch {metrics['best_epoch'] + 1} of {metrics['epochs_run']}."))
    for figure in ("curves.png", "confusion.png"):
        if (run_dir / figure).is_file():
            display(Image(filename=str(run_dir / figure)))
    if (run_dir / "report.txt").is_file():
        print((run_dir / "report.txt").read_text())
    return metrics


# ---------------------------------------------------------------------------------------------------
# Grids of notebook runs
# ---------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One notebook execution of a grid: where it goes, with which parameters, and how it ended."""

    experiment: str
    notebook: Path
    parameters: dict
    name: str
    run_dir: Path
    status: str = "pending"  # pending | ok | skipped | failed | interrupted
    error: str | None = None
    seconds: float = 0.0

    @property
    def output_notebook(self) -> Path:
        return self.run_dir / NOTEBOOK_FILE


@dataclass
class Grid:
    """A parsed grid file: its name, where it was read from, and its expanded runs."""

    name: str
    source: Path | None
    runs: list[Run] = field(default_factory=list)


def combinations(grid: dict | None) -> list[dict]:
    """The cartesian product of a ``{parameter: [values...]}`` mapping (one empty dict when empty)."""
    grid = grid or {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid value of {key!r} must be a non-empty list, not {values!r} "
                             "(put a fixed value under 'parameters')")
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def _slug_value(value) -> str:
    if value is None or isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, (int, float, str)):
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    clean = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_")
    if clean != text or len(clean) > 32:
        clean = f"{clean[:16]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return clean or "empty"


def run_name(experiment: str, combination: dict) -> str:
    """Deterministic run name: ``experiment--key=value--...`` (odd values are shortened with a hash)."""
    parts = [experiment] + [f"{re.sub(r'[^A-Za-z0-9_]+', '_', key)}={_slug_value(value)}"
                            for key, value in combination.items()]
    return "--".join(parts)


def _substitute(value, output: Path):
    if isinstance(value, str):
        return value.replace(OUTPUT_PLACEHOLDER, str(output))
    if isinstance(value, list):
        return [_substitute(v, output) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, output) for k, v in value.items()}
    return value


def _find_notebook(path: str, base: Path | None) -> Path:
    candidates = [Path(path).expanduser()]
    if not candidates[0].is_absolute():
        candidates = [b / path for b in (base, Path.cwd(), REPO_ROOT) if b is not None]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise FileNotFoundError(f"notebook not found: {path} (looked in {', '.join(str(c) for c in candidates)})")


def notebook_parameters(notebook: str | os.PathLike) -> set[str]:
    """Names declared in a notebook's ``parameters`` cell (papermill's inspection)."""
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def load_grid(grid: str | os.PathLike | dict, output: str | os.PathLike = "results/experiments") -> Grid:
    """Parse and check a grid (a YAML file or the same structure as a dict) into its runs.

    Every parameter named under ``parameters`` or ``grid`` must be declared by the notebook (a typo
    fails here, before anything runs); ``defaults`` go only to the notebooks that declare them.
    """
    import yaml

    source = None
    if not isinstance(grid, dict):
        source = Path(grid)
        if not source.is_file():
            raise ValueError(f"no grid file at {source} (see experiments/quick.yaml for the format)")
        grid = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    if not isinstance(grid, dict):
        raise ValueError(f"{source}: a grid is a mapping with an 'experiments' list")
    unknown = set(grid) - {"name", "description", "defaults", "experiments"}
    if unknown:
        raise ValueError(f"{source or 'grid'}: unknown key(s) {sorted(unknown)} "
                         "(expected name, description, defaults, experiments)")
    name = str(grid.get("name") or (source.stem if source else "grid"))
    out = Path(output).expanduser().resolve() / name
    experiments = grid.get("experiments") or []
    if not isinstance(experiments, list) or not experiments:
        raise ValueError(f"{source or 'grid'}: 'experiments' must be a non-empty list")
    defaults = grid.get("defaults") or {}
    base = source.parent.resolve() if source else None
    result = Grid(name, source)
    for number, spec in enumerate(experiments, start=1):
        where = f"{source or 'grid'}: experiment {number}"
        if not isinstance(spec, dict) or "notebook" not in spec:
            raise ValueError(f"{where}: each experiment needs a 'notebook'")
        extra = set(spec) - {"notebook", "name", "parameters", "grid"}
        if extra:
            raise ValueError(f"{where}: unknown key(s) {sorted(extra)} "
                             "(expected notebook, name, parameters, grid)")
        notebook = _find_notebook(spec["notebook"], base)
        declared = notebook_parameters(notebook)
        fixed, varied = spec.get("parameters") or {}, spec.get("grid") or {}
        undeclared = (set(fixed) | set(varied)) - declared
        if undeclared:
            raise ValueError(f"{where}: {notebook.name} has no parameter(s) {sorted(undeclared)}; "
                             f"it declares {sorted(declared)}")
        experiment = str(spec.get("name") or notebook.stem)
        for combination in combinations(varied):
            name_ = run_name(experiment, combination)
            run_dir = out / name_
            parameters = {k: v for k, v in defaults.items() if k in declared}
            parameters.update(fixed)
            parameters.update(combination)
            if "run_dir" in declared:
                parameters["run_dir"] = str(run_dir)
            result.runs.append(Run(experiment, notebook, _substitute(parameters, out), name_, run_dir))
    names = [r.name for r in result.runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{source or 'grid'}: runs {duplicates} appear twice: give the experiments "
                         "distinct 'name's")
    return result


def read_record(run_dir: str | os.PathLike) -> dict | None:
    """The runner's record of a run directory (``experiment.json``), or None."""
    try:
        return json.loads((Path(run_dir) / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_finished(run_dir: str | os.PathLike) -> bool:
    """A run is finished when its notebook ran to the end and, if it trained, the run is complete."""
    from emolib.train import is_complete

    record = read_record(run_dir)
    if not record or record.get("status") != "ok":
        return False
    return is_complete(run_dir) or not (Path(run_dir) / "params.json").exists()


def _same(a: dict, b: dict) -> bool:
    def canonical(x):
        return json.dumps(x, sort_keys=True, default=str)

    return canonical(a) == canonical(b)


def prepare_run(run: Run, force: bool = False) -> bool:
    """Decide whether ``run`` must execute (True) or is finished (False, its status set to ``skipped``).

    Same parameters as recorded: a finished run is skipped; an unfinished one runs again and its
    training resumes from its checkpoint. Changed parameters (or ``force``): the old directory is moved
    to ``<grid output>/.old/<name>-<time>`` and the run starts afresh.
    """
    record = read_record(run.run_dir)
    changed = record is not None and not _same(record.get("parameters", {}), run.parameters)
    if not force and not changed and is_finished(run.run_dir):
        run.status = "skipped"
        return False
    if (force or changed) and run.run_dir.exists():
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        old = run.run_dir.parent / ".old" / f"{run.name}-{stamp}"
        old.parent.mkdir(parents=True, exist_ok=True)
        run.run_dir.rename(old)
    return True


def error_line(error: BaseException) -> str:
    """The last line of an exception as a traceback would print it (``ValueError: ...``)."""
    from papermill.exceptions import PapermillExecutionError, strip_color

    if isinstance(error, PapermillExecutionError):
        name, message = error.ename, strip_color(str(error.evalue or ""))
    else:
        name, message = type(error).__name__, str(error)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return f"{name}: {lines[-1]}" if lines else name


def execute(run: Run, kernel: str = "python3", command: str | None = None) -> Run:
    """Run one notebook with papermill (cwd: the notebook's folder); record how it ended, never raise.

    ``KeyboardInterrupt`` is recorded as ``interrupted`` and raised again.
    """
    import papermill

    run.run_dir.mkdir(parents=True, exist_ok=True)
    record = {"experiment": run.experiment, "notebook": str(run.notebook), "parameters": run.parameters,
              "kernel": kernel, "command": command, "started": datetime.now().isoformat(timespec="seconds"),
              "status": "running"}
    write_json(run.run_dir / RECORD_FILE, record)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(str(run.notebook), str(run.output_notebook), parameters=run.parameters,
                                   kernel_name=kernel, progress_bar=False, cwd=str(run.notebook.parent))
        run.status, run.error = "ok", None
    except KeyboardInterrupt:
        run.status, run.error = "interrupted", "KeyboardInterrupt"
        raise
    except Exception as error:  # continue-on-failure: the grid goes on, the summary says why
        run.status, run.error = "failed", error_line(error)
    finally:
        run.seconds = time.perf_counter() - started
        write_json(run.run_dir / RECORD_FILE, {**record, "status": run.status, "error": run.error,
                                               "seconds": round(run.seconds, 1)})
    return run


def run_grid(grid: str | os.PathLike | dict | Grid, output: str | os.PathLike = "results/experiments",
             kernel: str = "python3", force: bool = False, progress: bool = True,
             command: str | None = None) -> Grid:
    """Execute every run of ``grid`` one after the other; finished runs are skipped (see :func:`prepare_run`).

    A failing notebook does not stop the grid: its run is marked ``failed`` with the exception's last
    line (see :func:`format_status`). Returns the grid with each run's status.
    """
    from tqdm.auto import tqdm

    grid = grid if isinstance(grid, Grid) else load_grid(grid, output)
    bar = tqdm(grid.runs, desc=grid.name, unit="run", disable=not progress)
    for run in bar:
        bar.set_postfix_str(run.name, refresh=True)
        if not prepare_run(run, force):
            continue
        execute(run, kernel, command)
        if run.status == "failed":
            bar.write(f"failed: {run.name}: {run.error}")
    bar.close()
    return grid


def format_status(grid: Grid) -> str:
    """Counts of ok / skipped / failed runs and, for each failure, why and where its notebook is."""
    counts = {s: sum(r.status == s for r in grid.runs) for s in ("ok", "skipped", "failed", "pending")}
    lines = [f"{grid.name}: {len(grid.runs)} runs — {counts['ok']} ran, {counts['skipped']} skipped "
             f"(already finished), {counts['failed']} failed" +
             (f", {counts['pending']} not run" if counts["pending"] else "")]
    for run in grid.runs:
        if run.status == "failed":
            lines.append(f"  FAILED {run.name}: {run.error}\n         notebook: {run.output_notebook}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Comparison of runs
# ---------------------------------------------------------------------------------------------------


def find_runs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Finished run directories (metrics.json + model card) at or below ``paths`` (missing paths: none)."""
    from emolib.train import is_complete

    found = set()
    for path in paths:  # folders named .something (such as the runner's .old) are left out
        path = Path(path).expanduser()
        if not path.exists():
            continue
        if (path / "metrics.json").is_file():
            candidates = [path]
        else:
            candidates = [p.parent for p in path.rglob("metrics.json")]
        hidden = {p for p in candidates if any(part.startswith(".") for part in p.relative_to(path).parts)}
        found.update(p.resolve() for p in candidates if p not in hidden and is_complete(p))
    return sorted(found)


def _short(value) -> str | float | int | None:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def run_row(run_dir: str | os.PathLike) -> dict:
    """One row of the comparison table: what the run was, how well it did, what it cost."""
    run_dir = Path(run_dir)
    params = json.loads((run_dir / "params.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    card = json.loads((run_dir / "model.json").read_text())
    config, data = params.get("config", {}), params.get("data", {})
    split = metrics["evaluated_split"]
    scores = metrics[split]
    record = read_record(run_dir) or {}
    row = {
        "run": run_dir.name,
        "notebook": Path(record["notebook"]).stem if record.get("notebook") else None,
        "backbone": config.get("backbone"),
        "input": f"{card['input_size'][0]}x{card['input_size'][1]}x{card['channels']}",
        "weights": config.get("weights") or "none",
        "train_base": _short(config.get("train_base")),
        "augment": _short(config.get("augment")),
        "class_weights": _short(config.get("class_weights")) or "none",
        "learning_rate": config.get("learning_rate"),
        "batch_size": config.get("batch_size"),
        "dataset": data.get("dataset"),
        "max_per_class": data.get("max_per_class"),
        "train_images": data.get("train"),
        "split": split,
        "test_images": scores.get("samples"),
        **{name: scores[name] for name in METRICS},
        **{f"f1_{name}": values["f1"] for name, values in scores.get("per_class", {}).items()},
        "epochs_run": metrics.get("epochs_run"),
        "best_epoch": metrics.get("best_epoch", -1) + 1,
        "wall_time_s": card.get("wall_time_s"),
        "peak_memory_mb": card.get("peak_memory_mb"),
        "parameters": card.get("parameters"),
        "path": str(run_dir.relative_to(REPO_ROOT) if run_dir.is_relative_to(REPO_ROOT) else run_dir),
    }
    return row


def runs_table(paths: Sequence[str | os.PathLike] | str | os.PathLike | None = None):
    """A pandas table with one row per finished run found at or below ``paths``.

    Default paths: :func:`runs_dir` and ``<repo>/results/experiments``. Columns: run, notebook,
    backbone, input, training knobs, data subset, accuracy, balanced_accuracy, macro_f1, ``f1_<class>``
    per class, epochs_run, best_epoch, wall_time_s (training), peak_memory_mb (process peak),
    parameters (count), path.
    """
    import pandas as pd

    if paths is None:
        paths = [runs_dir(), REPO_ROOT / "results" / "experiments"]
    elif isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows = [run_row(p) for p in find_runs(paths)]
    if not rows:
        return pd.DataFrame(columns=["run", "backbone", *METRICS, "epochs_run", "wall_time_s",
                                     "peak_memory_mb", "parameters"])
    table = pd.DataFrame(rows)
    for column in INTEGER_COLUMNS:  # counts stay integers where some runs lack them (no 80.0)
        if column in table:
            table[column] = pd.to_numeric(table[column]).astype("Int64")
    return table


INTEGER_COLUMNS = ("batch_size", "max_per_class", "train_images", "test_images", "epochs_run", "best_epoch",
                   "parameters")


#: the columns of the printed / markdown table (the csv keeps them all)
DISPLAY_COLUMNS = ("run", "backbone", "input", "weights", "augment", "class_weights", "learning_rate",
                   "max_per_class", "train_images", "test_images", *METRICS, "f1_*", "epochs_run",
                   "wall_time_s", "peak_memory_mb", "parameters")


def display_columns(table) -> list[str]:
    """The columns of ``table`` that :data:`DISPLAY_COLUMNS` selects, in that order."""
    columns = []
    for name in DISPLAY_COLUMNS:
        if name.endswith("*"):
            columns += [c for c in table.columns if c.startswith(name[:-1])]
        elif name in table.columns:
            columns.append(name)
    return columns


def _cell(value) -> str:
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value and abs(value) < 0.01:
            return f"{value:g}"  # learning rates
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return str(value).replace("|", "\\|")


def to_markdown(table, columns: Sequence[str] | None = None) -> str:
    """A GitHub markdown table (floats to 3 decimals; no dependency on ``tabulate``)."""
    columns = list(columns or display_columns(table))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for _, row in table.iterrows():
        values = [row[c].item() if hasattr(row[c], "item") else row[c] for c in columns]
        lines.append("| " + " | ".join(_cell(v) for v in values) + " |")
    return "\n".join(lines)


def plot_runs(table, metrics: Sequence[str] = METRICS):
    """The comparison chart: scores, parameter count, training time and peak memory of each run."""
    import matplotlib.pyplot as plt

    table = table.set_index("run")
    height = 1.2 + 0.35 * len(table) * (1 + len(metrics) / 3)
    fig, axes = plt.subplots(1, 4, figsize=(16, height), sharey=True,
                             gridspec_kw={"width_ratios": [2, 1, 1, 1]})
    table[list(metrics)].plot.barh(ax=axes[0], xlim=(0, 1), title="test scores")
    for ax, column, title in ((axes[1], "parameters", "parameters (millions)"),
                              (axes[2], "wall_time_s", "training time (s)"),
                              (axes[3], "peak_memory_mb", "peak memory (MB)")):
        scale = 1e6 if column == "parameters" else 1
        (table[column].astype(float) / scale).plot.barh(ax=ax, title=title, color="tab:gray")
    axes[0].invert_yaxis()
    axes[0].legend(loc="lower right", fontsize="small")
    for ax in axes:
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def save_table(table, path: str | os.PathLike, header: str = "") -> Path:
    """Write ``table`` as ``.csv`` (all columns), ``.md`` (``header`` + display columns) or ``.png`` chart."""
    path = Path(path)
    if path.suffix == ".csv":
        return write_atomic(path, table.to_csv(index=False))
    if path.suffix == ".md":
        return write_atomic(path, f"{header}{to_markdown(table)}\n")
    if path.suffix == ".png":
        import matplotlib.pyplot as plt

        from emolib.files import atomic_path

        fig = plot_runs(table)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
        return path
    raise ValueError(f"--save wants a .csv, .md or .png file, not {path}")


def _commands(table) -> list[str]:
    commands = []
    for run_dir in table.get("path", []):
        command = (read_record(resolve_path(run_dir)) or {}).get("command")
        if command and command not in commands:
            commands.append(command)
    return commands


def run_cli(args) -> int:
    """``emolib experiments run GRID`` (papermill over a grid) and ``emolib experiments summary``."""
    import matplotlib

    matplotlib.use("Agg")
    if args.action == "run":
        command = " ".join(["python -m emolib experiments run", args.grid] +
                           ([f"--output {args.output}"] if args.output != "results/experiments" else []) +
                           ([f"--kernel {args.kernel}"] if args.kernel != "python3" else []) +
                           (["--force"] if args.force else []))
        grid = run_grid(args.grid, args.output, args.kernel, args.force, command=command)
        status = format_status(grid)
        out = Path(args.output).expanduser().resolve() / grid.name
        table = runs_table([r.run_dir for r in grid.runs])
        header = f"# {grid.name}: comparison of runs\n\nProduced by `{command}`\n\n```\n{status}\n```\n\n"
        if len(table):
            save_table(table, out / "summary.md", header)
            save_table(table, out / "summary.csv")
        else:
            write_atomic(out / "summary.md", header + "No finished runs.\n")
        print(status)
        print(f"comparison table: {out / 'summary.md'}")
        return 1 if any(r.status == "failed" for r in grid.runs) else 0
    table = runs_table(args.runs)
    if not len(table):
        print(f"no finished runs under {', '.join(args.runs)}")
        return 1
    print(to_markdown(table))
    if args.save:
        command = f"python -m emolib experiments summary {' '.join(args.runs)} --save {args.save}"
        produced = "\n".join(f"    {c}" for c in [*_commands(table), command])
        save_table(table, args.save, f"# Comparison of runs\n\nProduced by:\n\n{produced}\n\n")
        print(f"saved {args.save}")
    return 0

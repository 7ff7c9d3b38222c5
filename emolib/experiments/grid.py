"""Grids of notebook runs: parse a YAML grid, decide what must run, execute one run with papermill.

See :mod:`emolib.experiments` for the grid format. :func:`run_grid` executes the runs one after the
other on this machine; :func:`emolib.experiments.cluster.run_grid_ray` runs the same runs as Ray tasks.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from emolib.experiments.paths import REPO_ROOT
from emolib.files import write_json
from emolib.provenance import code_version

RECORD_FILE = "experiment.json"
NOTEBOOK_FILE = "notebook.ipynb"
OUTPUT_PLACEHOLDER = "${output}"


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
    resources: dict = field(default_factory=dict)  # Ray resources of the run, e.g. {"num_gpus": 1}
    reads_output: bool = False  # its parameters name ${output}: it reads the runs listed before it

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


def _substitute(value, output: Path, parameters: dict):
    """``${output}`` replaced by the grid's output folder and ``${name}`` by the run's parameter ``name``."""
    if isinstance(value, str):
        value = value.replace(OUTPUT_PLACEHOLDER, str(output))
        return re.sub(r"\$\{(\w+)\}", lambda m: str(parameters[m.group(1)]) if m.group(1) in parameters
                      else m.group(0), value)
    if isinstance(value, list):
        return [_substitute(v, output, parameters) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, output, parameters) for k, v in value.items()}
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
    unknown = set(grid) - {"name", "description", "defaults", "resources", "experiments"}
    if unknown:
        raise ValueError(f"{source or 'grid'}: unknown key(s) {sorted(unknown)} "
                         "(expected name, description, defaults, resources, experiments)")
    name = str(grid.get("name") or (source.stem if source else "grid"))
    out = Path(output).expanduser().resolve() / name
    experiments = grid.get("experiments") or []
    if not isinstance(experiments, list) or not experiments:
        raise ValueError(f"{source or 'grid'}: 'experiments' must be a non-empty list")
    defaults = grid.get("defaults") or {}
    resources = check_resources(grid.get("resources"), f"{source or 'grid'}: resources")
    base = source.parent.resolve() if source else None
    result = Grid(name, source)
    for number, spec in enumerate(experiments, start=1):
        where = f"{source or 'grid'}: experiment {number}"
        if not isinstance(spec, dict) or "notebook" not in spec:
            raise ValueError(f"{where}: each experiment needs a 'notebook'")
        extra = set(spec) - {"notebook", "name", "parameters", "grid", "resources"}
        if extra:
            raise ValueError(f"{where}: unknown key(s) {sorted(extra)} "
                             "(expected notebook, name, parameters, grid, resources)")
        run_resources = {**resources, **check_resources(spec.get("resources"), f"{where}: resources")}
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
            substituted = _substitute(parameters, out, parameters)
            reads_output = OUTPUT_PLACEHOLDER in json.dumps(parameters)
            result.runs.append(Run(experiment, notebook, substituted, name_, run_dir,
                                   resources=dict(run_resources), reads_output=reads_output))
    names = [r.name for r in result.runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{source or 'grid'}: runs {duplicates} appear twice: give the experiments "
                         "distinct 'name's")
    return result


#: the per-run resources a grid may ask of Ray (``resources:`` at the top or in an experiment)
RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")


def check_resources(resources: dict | None, where: str) -> dict:
    """``resources`` checked: only :data:`RESOURCE_KEYS`, each a number >= 0."""
    resources = resources or {}
    if not isinstance(resources, dict):
        raise ValueError(f"{where}: expected a mapping such as {{num_cpus: 4, num_gpus: 1}}")
    for key, value in resources.items():
        if key not in RESOURCE_KEYS:
            raise ValueError(f"{where}: unknown resource {key!r} (expected {', '.join(RESOURCE_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{where}: {key} must be a number >= 0, not {value!r}")
    return dict(resources)


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


def execute(run: Run, kernel: str = "python3", command: str | None = None, start_timeout: float = 60,
            start_attempts: int = 1) -> Run:
    """Run one notebook with papermill (cwd: the notebook's folder); record how it ended, never raise.

    ``KeyboardInterrupt`` is recorded as ``interrupted`` and raised again. A kernel that fails to
    start (no reply within ``start_timeout`` seconds, or a ZMQ port taken by a kernel started at the
    same moment: papermill issue 511) is started again, up to ``start_attempts`` times in all.
    """

    run.run_dir.mkdir(parents=True, exist_ok=True)
    record = {"experiment": run.experiment, "notebook": str(run.notebook), "parameters": run.parameters,
              "kernel": kernel, "command": command, "code_version": code_version(),
              "started": datetime.now().isoformat(timespec="seconds"),
              "status": "running"}
    write_json(run.run_dir / RECORD_FILE, record)
    started = time.perf_counter()
    try:
        for attempt in range(1, start_attempts + 1):
            try:
                _papermill(run, kernel, start_timeout)
                break
            except Exception as error:
                if attempt == start_attempts or not _kernel_did_not_start(error, run):
                    raise
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


def _papermill(run: Run, kernel: str, start_timeout: float) -> None:
    import papermill

    papermill.execute_notebook(str(run.notebook), str(run.output_notebook), parameters=run.parameters,
                               kernel_name=kernel, progress_bar=False, cwd=str(run.notebook.parent),
                               start_timeout=start_timeout)


def _kernel_did_not_start(error: Exception, run: Run) -> bool:
    """True when papermill failed before the notebook's first cell ran (kernel start-up trouble)."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, PapermillExecutionError):
        return False
    try:
        executed = json.loads(run.output_notebook.read_text())
    except (OSError, ValueError):
        return True
    return not any(cell.get("execution_count") for cell in executed.get("cells", []))


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


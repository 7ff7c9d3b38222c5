"""A grid's runs as Ray tasks: each pending run one task, executing the same papermill run.

The driver (this process) decides what must run exactly as :func:`emolib.experiments.run_grid` does
(:func:`~emolib.experiments.grid.prepare_run`: finished runs skipped, interrupted ones resumed, changed
ones started afresh), then submits one task per run with the run's resources (``num_cpus``,
``num_gpus``, ``memory``: from the grid file, overridden by the command line). Ray sets
``OMP_NUM_THREADS`` and ``CUDA_VISIBLE_DEVICES`` of each task from them; the notebook's kernel, a child
of the Ray worker, inherits both. A run whose parameters read the grid's output (``${output}``, e.g.
the comparison notebook) starts once every run listed before it has ended.

Run directories are written by the workers: ``--output`` must be a path every node sees (a shared
filesystem, or one machine).
"""

from __future__ import annotations

import os

from emolib.experiments.grid import (
    RECORD_FILE,
    Grid,
    Run,
    error_line,
    execute,
    load_grid,
    prepare_run,
    read_record,
)
from emolib.files import write_json

#: kernel start-up under Ray: concurrent starts can collide on ZMQ ports and miss a short timeout
START_TIMEOUT = 300
START_ATTEMPTS = 3
#: resources of a run that asks for nothing
DEFAULT_RESOURCES = {"num_cpus": 1}


def _execute_on_worker(run: Run, kernel: str, command: str | None) -> Run:
    return execute(run, kernel, command, start_timeout=START_TIMEOUT, start_attempts=START_ATTEMPTS)


def run_grid_ray(grid: str | os.PathLike | dict | Grid, output: str | os.PathLike = "results/experiments",
                 kernel: str = "python3", force: bool = False, progress: bool = True,
                 command: str | None = None, address: str | None = None, jobs: int | None = None,
                 resources: dict | None = None) -> Grid:
    """Execute the pending runs of ``grid`` as Ray tasks; the same statuses as :func:`run_grid`.

    Parameters
    ----------
    address : str, optional
        The Ray cluster (see :func:`emolib.cluster.connect`; default: ``$RAY_ADDRESS`` or a local one).
    jobs : int, optional
        At most this many runs at once (default: as many as the cluster's resources allow).
    resources : dict, optional
        Resources of every run, over those of the grid file (e.g. ``{"num_gpus": 1}``).
    """
    from tqdm.auto import tqdm

    from emolib.cluster import connect

    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {jobs}")
    grid = grid if isinstance(grid, Grid) else load_grid(grid, output)
    ray = connect(address)
    task = ray.remote(max_retries=0)(_execute_on_worker)
    pending = [run for run in grid.runs if prepare_run(run, force)]
    bar = tqdm(total=len(pending), desc=grid.name, unit="run", disable=not progress)
    in_flight: dict = {}

    def collect(count: int) -> None:
        ready, _ = ray.wait(list(in_flight), num_returns=count)
        for ref in ready:
            run = in_flight.pop(ref)
            try:
                ended = ray.get(ref)
                run.status, run.error, run.seconds = ended.status, ended.error, ended.seconds
            except Exception as error:  # the worker died (killed, out of memory): record it, go on
                run.status, run.error = "failed", error_line(error)
                write_json(run.run_dir / RECORD_FILE, {**(read_record(run.run_dir) or {}),
                                                       "status": run.status, "error": run.error})
            if run.status == "failed":
                bar.write(f"failed: {run.name}: {run.error}")
            bar.update()

    try:
        for run in pending:
            if run.reads_output and in_flight:
                collect(len(in_flight))
            if jobs is not None and len(in_flight) >= jobs:
                collect(1)
            options = {**DEFAULT_RESOURCES, **run.resources, **(resources or {})}
            in_flight[task.options(**options).remote(run, kernel, command)] = run
        while in_flight:
            collect(1)
    except KeyboardInterrupt:
        for ref, run in in_flight.items():
            ray.cancel(ref, force=True)
            run.status, run.error = "interrupted", "KeyboardInterrupt"
        raise
    finally:
        bar.close()
    return grid

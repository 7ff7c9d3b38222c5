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
        resources: {num_gpus: 1}     # optional, here or at the top: what each run asks of Ray

Every combination becomes one run with a deterministic directory
``<output>/<grid name>/<experiment name>[--key=value...]/``; the notebook receives it as its
``run_dir`` parameter, and the executed notebook (``notebook.ipynb``) and the runner's record
(``experiment.json``: parameters, status, error, seconds, command) are kept in it, beside the files
:func:`emolib.train.train` writes. Running a grid again skips its finished runs and resumes an
interrupted training run from its checkpoint; a run whose parameters changed since (or every run, with
``force``) starts afresh, its old directory moved to ``<output>/<grid name>/.old/``. A string value may
contain ``${output}``, replaced by the grid's output folder (e.g. for the comparison notebook), and
``${name}``, replaced by the run's own parameter ``name`` (e.g. ``${output}/02-simple-cnn--seed=${seed}``
names the baseline run of the same seed).

:func:`run_grid` executes the runs one after the other here; :func:`run_grid_ray` runs each
pending run as a Ray task (local Ray, or a cluster), with the same promises.

:func:`runs_table` turns run directories into one comparison table (pandas), :func:`plot_runs` charts
it. The notebook helpers are :mod:`emolib.notebook`'s.
Modules: :mod:`~emolib.experiments.grid` (grid file, records, one papermill run),
:mod:`~emolib.experiments.ray_grid` (the runs on Ray), :mod:`~emolib.experiments.compare` (table,
chart), :mod:`~emolib.experiments.collect` (a grid's small outputs), :mod:`~emolib.experiments.paths`.
"""

from emolib.experiments.compare import (
    DISPLAY_COLUMNS,
    METRICS,
    display_columns,
    find_runs,
    ideas_markdown,
    ideas_table,
    plot_ideas,
    plot_runs,
    run_row,
    runs_table,
    save_table,
    to_markdown,
)
from emolib.experiments.grid import (
    NOTEBOOK_FILE,
    OUTPUT_PLACEHOLDER,
    RECORD_FILE,
    Grid,
    Run,
    combinations,
    error_line,
    execute,
    format_status,
    is_finished,
    load_grid,
    notebook_parameters,
    prepare_run,
    read_record,
    run_grid,
    run_name,
)
from emolib.experiments.paths import REPO_ROOT, data_root, resolve_path, runs_dir, shared_dir
from emolib.experiments.ray_grid import run_grid_ray

__all__ = [
    "DISPLAY_COLUMNS", "METRICS", "NOTEBOOK_FILE", "OUTPUT_PLACEHOLDER", "RECORD_FILE", "REPO_ROOT", "Grid",
    "Run", "combinations", "data_root", "display_columns", "error_line", "execute", "find_runs",
    "format_status", "ideas_markdown", "ideas_table", "is_finished", "load_grid",
    "notebook_parameters", "plot_ideas", "plot_runs", "prepare_run",
    "read_record", "resolve_path", "run_grid",
    "run_grid_ray", "run_name", "run_row", "runs_dir", "runs_table", "save_table", "shared_dir",
    "to_markdown",
]

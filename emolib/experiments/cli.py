"""``emolib experiments run GRID [--ray [ADDRESS]]`` and ``emolib experiments summary RUNS``."""

from __future__ import annotations

from pathlib import Path

from emolib.experiments.compare import _commands, runs_table, save_table, to_markdown
from emolib.experiments.grid import format_status, run_grid
from emolib.experiments.ray_grid import run_grid_ray
from emolib.files import write_atomic


def _ray_options(args) -> list[str]:
    if args.ray is None:
        return []
    options = ["--ray" + (f" {args.ray}" if args.ray else "")]
    for name in ("jobs", "num_cpus", "num_gpus"):
        if getattr(args, name) is not None:
            options.append(f"--{name.replace('_', '-')} {getattr(args, name)}")
    return options


def run_cli(args) -> int:
    """``emolib experiments run GRID`` (papermill over a grid) and ``emolib experiments summary``."""
    if args.action == "run":
        command = " ".join(["python -m emolib experiments run", args.grid] +
                           ([f"--output {args.output}"] if args.output != "results/experiments" else []) +
                           ([f"--kernel {args.kernel}"] if args.kernel != "python3" else []) +
                           (["--force"] if args.force else []) + _ray_options(args))
        if args.ray is None:
            if args.jobs or args.num_cpus is not None or args.num_gpus is not None:
                raise ValueError("--jobs, --num-cpus and --num-gpus go with --ray (runs execute on Ray)")
            grid = run_grid(args.grid, args.output, args.kernel, args.force, command=command)
        else:
            resources = {name: getattr(args, name) for name in ("num_cpus", "num_gpus")
                         if getattr(args, name) is not None}
            grid = run_grid_ray(args.grid, args.output, args.kernel, args.force, command=command,
                                address=args.ray, jobs=args.jobs, resources=resources)
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


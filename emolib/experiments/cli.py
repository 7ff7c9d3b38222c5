"""``emolib experiments run GRID [--ray [ADDRESS]]``, ``... summary RUNS`` and ``... collect SOURCE DEST``."""

from __future__ import annotations

from pathlib import Path

from emolib.experiments.collect import collect_outputs
from emolib.experiments.compare import (
    _commands,
    ideas_markdown,
    ideas_table,
    plot_ideas,
    runs_table,
    save_figure,
    save_table,
    to_markdown,
)
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
    if args.action == "collect":
        copied = collect_outputs(args.source, args.destination)
        print(f"{len(copied)} finished runs' outputs copied to {args.destination} "
              "(no weights, no checkpoints)")
        return 0 if copied else 1
    table = runs_table(args.runs or None)
    if not len(table):
        print(f"no finished runs under {', '.join(args.runs) or 'the default run folders'}")
        return 1
    ideas = ideas_table(table) if args.by_idea or args.figure else None
    shown = ideas if args.by_idea else table
    print(ideas_markdown(shown) if args.by_idea else to_markdown(table))
    if args.save:
        command = ("python -m emolib experiments summary " + " ".join(args.runs) +
                   (" --by-idea" if args.by_idea else "") + f" --save {args.save}" +
                   (f" --figure {args.figure}" if args.figure else ""))
        produced = "\n".join(f"    {c}" for c in [*_commands(table), command])
        header = f"# Comparison of runs\n\nProduced by:\n\n{produced}\n\n"
        if args.by_idea and Path(args.save).suffix == ".md":
            write_atomic(Path(args.save), f"{header}## By idea: mean ± sd over seeds\n\n"
                         f"{ideas_markdown(shown)}\n\n## Every run\n\n{to_markdown(table)}\n")
        else:
            save_table(shown, args.save, header)
        print(f"saved {args.save}")
    if args.figure:
        save_figure(plot_ideas(ideas), args.figure)
        print(f"saved {args.figure}")
    return 0

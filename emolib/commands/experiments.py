"""``emolib experiments run GRID [--ray [ADDRESS]]``, ``... summary RUNS`` and ``... collect SOURCE DEST``."""

from __future__ import annotations

from pathlib import Path

from emolib.experiments import collect, compare, ray_grid
from emolib.experiments import grid as grid_runner
from emolib.files import write_atomic


def _ray_options(args) -> list[str]:
    """The ``--ray`` options given, as the command line that reruns the grid names them."""
    if args.ray is None:
        return []
    options = ["--ray" + (f" {args.ray}" if args.ray else "")]
    for name in ("jobs", "num_cpus", "num_gpus"):
        if getattr(args, name) is not None:
            options.append(f"--{name.replace('_', '-')} {getattr(args, name)}")
    return options


def run(args) -> int:
    """``emolib experiments run GRID`` (papermill over a grid), ``... summary`` and ``... collect``."""
    if args.action == "run":
        command = " ".join(["python -m emolib experiments run", args.grid] +
                           ([f"--output {args.output}"] if args.output != "results/experiments" else []) +
                           ([f"--kernel {args.kernel}"] if args.kernel != "python3" else []) +
                           (["--force"] if args.force else []) + _ray_options(args))
        if args.ray is None:
            if args.jobs or args.num_cpus is not None or args.num_gpus is not None:
                raise ValueError("--jobs, --num-cpus and --num-gpus go with --ray (runs execute on Ray)")
            grid = grid_runner.run_grid(args.grid, args.output, args.kernel, args.force, command=command)
        else:
            resources = {name: getattr(args, name) for name in ("num_cpus", "num_gpus")
                         if getattr(args, name) is not None}
            grid = ray_grid.run_grid_ray(args.grid, args.output, args.kernel, args.force, command=command,
                                         address=args.ray, jobs=args.jobs, resources=resources)
        status = grid_runner.format_status(grid)
        out = Path(args.output).expanduser().resolve() / grid.name
        table = compare.runs_table([r.run_dir for r in grid.runs])
        header = f"# {grid.name}: comparison of runs\n\nProduced by `{command}`\n\n```\n{status}\n```\n\n"
        if len(table):
            compare.save_table(table, out / "summary.md", header)
            compare.save_table(table, out / "summary.csv")
        else:
            write_atomic(out / "summary.md", header + "No finished runs.\n")
        print(status)
        print(f"comparison table: {out / 'summary.md'}")
        return 1 if any(r.status == "failed" for r in grid.runs) else 0
    if args.action == "collect":
        copied = collect.collect_outputs(args.source, args.destination)
        print(f"{len(copied)} finished runs' outputs copied to {args.destination} "
              "(no weights, no checkpoints)")
        return 0 if copied else 1
    table = compare.runs_table(args.runs or None)
    if not len(table):
        print(f"no finished runs under {', '.join(args.runs) or 'the default run folders'}")
        return 1
    ideas = compare.ideas_table(table) if args.by_idea or args.figure else None
    shown = ideas if args.by_idea else table
    print(compare.ideas_markdown(shown) if args.by_idea else compare.to_markdown(table))
    if args.save:
        command = ("python -m emolib experiments summary " + " ".join(args.runs) +
                   (" --by-idea" if args.by_idea else "") + f" --save {args.save}" +
                   (f" --figure {args.figure}" if args.figure else ""))
        produced = "\n".join(f"    {c}" for c in [*compare._commands(table), command])
        header = f"# Comparison of runs\n\nProduced by:\n\n{produced}\n\n"
        if args.by_idea and Path(args.save).suffix == ".md":
            write_atomic(Path(args.save), f"{header}## By idea: mean ± sd over seeds\n\n"
                         f"{compare.ideas_markdown(shown)}\n\n## Every run\n\n{compare.to_markdown(table)}\n")
        else:
            compare.save_table(shown, args.save, header)
        print(f"saved {args.save}")
    if args.figure:
        compare.save_figure(compare.plot_ideas(ideas), args.figure)
        print(f"saved {args.figure}")
    return 0

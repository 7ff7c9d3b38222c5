"""Comparison of finished runs: one table (pandas), its markdown and csv forms, and a chart."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from emolib.experiments.grid import read_record
from emolib.experiments.paths import REPO_ROOT, resolve_path, runs_dir
from emolib.files import write_atomic
from emolib.modelcards import CARD_FILE

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def _full_config(config: dict) -> dict:
    """A params.json config with every field of today's TrainConfig (defaults where a run recorded
    before a field existed lacks it), so that a field added later does not split an idea in two."""
    from dataclasses import asdict

    from emolib.train import TrainConfig

    return {**asdict(TrainConfig()), **config}


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
    card = json.loads((run_dir / CARD_FILE).read_text())
    config, data = params.get("config", {}), params.get("data", {})
    split = metrics["evaluated_split"]
    scores = metrics[split]
    record = read_record(run_dir) or read_record(run_dir.parent) or {}  # a run made inside a grid's run
    row = {
        "run": run_dir.name,
        "idea": idea_of(run_dir, record),
        "seed": config.get("seed"),
        "setup": json.dumps({**{k: v for k, v in _full_config(config).items() if k != "seed"},  # but the seed
                             **{f"data.{k}": data.get(k) for k in ("dataset", "max_per_class", "fraction")}},
                            sort_keys=True, default=str),
        "notebook": Path(record["notebook"]).stem if record.get("notebook") else None,
        "backbone": config.get("backbone"),
        "input": f"{card['input_size'][0]}x{card['input_size'][1]}x{card['channels']}",
        "weights": config.get("weights") or "none",
        "train_base": _short(config.get("train_base")),
        "augment": _short(config.get("augment")),
        "class_weights": _short(config.get("class_weights")) or "none",
        "targets": config.get("targets"),
        "logit_adjusted": "logit_adjustment" in card,
        "learning_rate": config.get("learning_rate"),
        "batch_size": config.get("batch_size"),
        "dataset": data.get("dataset"),
        "max_per_class": data.get("max_per_class"),
        "train_images": data.get("train"),
        "split": split,
        "test_images": scores.get("samples"),
        **{name: scores[name] for name in METRICS},
        "ece": scores.get("ece"),  # runs evaluated before calibration was measured (2026-12-07) have none
        **{f"f1_{name}": values["f1"] for name, values in scores.get("per_class", {}).items()},
        **{f"{where.replace('/', '_')}_{name}": other[name]  # cross-dataset: e.g. ferplus_test_accuracy
           for where, other in metrics.get("other_datasets", {}).items() for name in METRICS},
        "epochs_run": metrics.get("epochs_run"),
        "best_epoch": metrics.get("best_epoch", -1) + 1,
        "wall_time_s": card.get("wall_time_s"),
        "peak_memory_mb": card.get("peak_memory_mb"),
        "parameters": card.get("parameters"),
        "path": str(run_dir.relative_to(REPO_ROOT) if run_dir.is_relative_to(REPO_ROOT) else run_dir),
    }
    return row


def idea_of(run_dir: Path, record: dict) -> str:
    """What a run tries, whatever its seed: its grid experiment's name (the record's), else its own name
    without ``--seed=N``."""
    if record.get("experiment"):
        return record["experiment"]
    return re.sub(r"--seed=\d+", "", run_dir.name)


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


INTEGER_COLUMNS = ("seed", "batch_size", "max_per_class", "train_images", "test_images", "epochs_run",
                   "best_epoch", "parameters")


def _score_columns(table) -> list[str]:
    return [c for c in table.columns if c in METRICS or c.startswith("f1_") or
            any(c.endswith(f"_{m}") and c != m for m in METRICS)]


def ideas_table(table):
    """One row per idea, the runs of one experiment whose setup (configuration and data, ``setup``)
    differs only in the seed: ``runs`` and ``seeds``, each score's ``<name>_mean`` and
    ``<name>_sd`` (sample standard deviation over the seeds; empty for one run), and the runs' data
    sizes, parameters, mean epochs and mean training time. Ideas keep the order of their first run."""
    import pandas as pd

    scores = _score_columns(table)
    rows = []
    for (idea, setup), group in table.groupby(["idea", "setup"], sort=False):
        first = group.iloc[0]
        described = ("dataset", "backbone", "input", "weights", "augment", "class_weights", "targets")
        row = {"idea": idea, "setup": setup, **{k: first[k] for k in described}}
        row["runs"] = len(group)
        row["seeds"] = " ".join(str(s) for s in sorted(group["seed"].dropna().tolist()))
        for column in scores:
            row[f"{column}_mean"] = group[column].mean()
            row[f"{column}_sd"] = group[column].std(ddof=1) if group[column].count() > 1 else None
        for column in ("train_images", "test_images", "parameters"):
            row[column] = first[column]
        row["epochs_run"] = group["epochs_run"].astype(float).mean()
        row["wall_time_s"] = group["wall_time_s"].astype(float).mean()
        rows.append(row)
    ideas = pd.DataFrame(rows)
    names = ideas["idea"].copy()
    for name, same in ideas[names.duplicated(keep=False)].groupby("idea"):  # e.g. 09's labels and votes
        setups = [json.loads(text) for text in same["setup"]]
        differing = [k for k in setups[0] if len({json.dumps(s.get(k), default=str) for s in setups}) > 1]
        for index, setup in zip(same.index, setups):
            names[index] = f"{name} (" + ", ".join(f"{k}={setup.get(k)}" for k in differing) + ")"
    ideas["idea"] = names
    return ideas


#: the columns of the by-idea markdown table, each score as mean ± sd
IDEA_COLUMNS = ("idea", "backbone", "runs", "train_images", "test_images", *METRICS, "f1_*",
                "*_test_accuracy", "epochs_run", "wall_time_s", "parameters")


def ideas_markdown(ideas) -> str:
    """The by-idea table in markdown, each score as ``mean ± sd`` (just the mean for one run)."""
    import pandas as pd

    means = [c[:-5] for c in ideas.columns if c.endswith("_mean")]
    shown = ideas[[c for c in ideas.columns if not c.endswith(("_mean", "_sd"))]].copy()
    for name in means:
        shown[name] = [f"{m:.3f}" + ("" if pd.isna(sd) else f" ± {sd:.3f}") if not pd.isna(m) else ""
                       for m, sd in zip(ideas[f"{name}_mean"], ideas[f"{name}_sd"])]
    columns = []
    for name in IDEA_COLUMNS:
        if name.startswith("*"):
            columns += [c for c in shown.columns
                        if c.endswith(name[1:]) and c != name[1:] and c not in columns]
        elif name.endswith("*"):
            columns += [c for c in shown.columns if c.startswith(name[:-1])]
        elif name in shown.columns:
            columns.append(name)
    return to_markdown(shown, columns)


def plot_ideas(ideas, metrics: Sequence[str] = METRICS):
    """Each idea's test scores as bars of the mean over seeds with the standard deviation as error bars
    (seaborn's style)."""
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    labels = list(ideas["idea"])
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.55 * len(labels)))
    height = 0.8 / len(metrics)
    palette = sns.color_palette("deep", len(metrics))
    for i, metric in enumerate(metrics):
        positions = np.arange(len(labels)) + (i - (len(metrics) - 1) / 2) * height
        spread = ideas[f"{metric}_sd"].astype(float).fillna(0)
        ax.barh(positions, ideas[f"{metric}_mean"], height, xerr=spread, capsize=3, color=palette[i],
                label=metric.replace("_", " "))
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("test score (mean ± sd over seeds)")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    sns.reset_orig()
    return fig


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    from emolib.files import atomic_path

    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)


#: the columns of the printed / markdown table (the csv keeps them all)
DISPLAY_COLUMNS = ("run", "backbone", "input", "weights", "augment", "class_weights", "learning_rate",
                   "max_per_class", "train_images", "test_images", *METRICS, "ece", "f1_*", "epochs_run",
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
        return save_figure(plot_runs(table), path)
    raise ValueError(f"--save wants a .csv, .md or .png file, not {path}")


def _commands(table) -> list[str]:
    commands = []
    for run_dir in table.get("path", []):
        command = (read_record(resolve_path(run_dir)) or {}).get("command")
        if command and command not in commands:
            commands.append(command)
    return commands


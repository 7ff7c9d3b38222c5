"""Export a finished training run as a shippable model directory (model, card, evaluation files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from emolib.files import write_atomic, write_json
from emolib.models import CARD_FILE, MODEL_FILE
from emolib.runs import finished_card

RUN_FILES = (MODEL_FILE, "metrics.json", "history.csv", "report.txt", "curves.png", "confusion.png")


def export_run(run_dir: str | os.PathLike, target: str | os.PathLike, name: str | None = None,
               training_commands: list[str] | None = None) -> Path:
    """Copy a finished run's model and evaluation files into ``target`` and write its card.

    The card is the run's card plus ``name`` (default: the target folder's name), ``source_run``
    and, when given, ``training_commands``. Each file is written atomically (never half a file);
    an interrupted export is finished by running it again. Other files in ``target`` (a
    hand-written README) are left alone.
    """
    run_dir, target = Path(run_dir), Path(target)
    card = finished_card(run_dir)
    for file_name in RUN_FILES:
        source = run_dir / file_name
        if source.is_file():
            write_atomic(target / file_name, source.read_bytes())
    card.update(name=name or target.name, source_run=run_dir.name)
    if training_commands:
        card["training_commands"] = list(training_commands)
    write_json(target / CARD_FILE, card)
    return target


def run_cli(args) -> int:
    """``emolib export RUN_DIR --to DIR``: make a finished run a shippable model directory."""
    target = export_run(args.run_dir, args.to, args.name, args.training_commands)
    metrics = json.loads((target / CARD_FILE).read_text(encoding="utf-8"))["metrics"]
    scores = [f"{split} accuracy {value['accuracy']:.4f}" for split, value in metrics.items()
              if isinstance(value, dict)]
    print(f"exported {args.run_dir} to {target}: {', '.join(scores)}")
    return 0

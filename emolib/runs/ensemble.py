"""Ensembles of finished runs: one model that averages the class probabilities of its members.

Members trained from different random initialisations make partly different mistakes, so their
mean probability is more often right than either alone (snapshots of one run are too alike to
gain). Every member must have been trained with the same validation carve, so the ensemble's
val score is still a held-out score and the val split can decide whether to keep it.
"""

from __future__ import annotations

import os
from pathlib import Path

from emolib import data as D
from emolib import models as M
from emolib import runs


def ensemble_model(members, name: str = "ensemble"):
    """A model that feeds its input face to every one of ``members`` and averages their probabilities.

    The members take the same input (size, channels) and predict the same classes in the same order.
    Only the probabilities are averaged: a member's valence-arousal output is left out.
    """
    import keras

    shapes = {tuple(member.input_shape[1:]) for member in members}
    classes = {member.outputs[0].shape[-1] for member in members}
    if len(members) < 2 or len(shapes) > 1 or len(classes) > 1:
        raise ValueError(f"an ensemble needs at least 2 members with one input shape and one number of "
                         f"classes (got {len(members)} members, inputs {sorted(shapes)}, "
                         f"classes {sorted(classes)})")
    face = keras.Input(shapes.pop(), dtype=members[0].inputs[0].dtype, name="face")
    outputs = [keras.Model(member.inputs[0], member.outputs[0], name=f"member_{index}")(face)
               for index, member in enumerate(members)]
    return keras.Model(face, keras.layers.Average(name="mean_probability")(outputs), name=name)


def ensemble_runs(run_dirs, val_split: D.Split, test_split: D.Split | None = None,
                  output: str | os.PathLike | None = None) -> Path:
    """Write the ensemble of the finished runs ``run_dirs`` as a new run ``<first name>-ensemble<k>``.

    ``val_split`` and ``test_split`` are the runs' own: each member is checked to have been trained
    with this validation split. The new run's metrics.json has the first member's val and test
    metrics as ``source_metrics``; its card lists the members. The member runs are not touched.
    """
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    cards = runs.combinable_cards(run_dirs, val_split, "ensemble")
    model = ensemble_model([M.load_model(run_dir).model for run_dir in run_dirs])
    record = {"members": [run_dir.name for run_dir in run_dirs], "combination": "mean of probabilities",
              "member_val_accuracy": [card["metrics"]["val_accuracy"] for card in cards]}
    return runs.write_derived_run(run_dirs[0], f"ensemble{len(run_dirs)}", model, val_split, test_split,
                                  output, ensemble=record)

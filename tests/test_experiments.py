"""The experiment runner: a YAML grid executed with papermill, resume, failures, and the comparison table."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from emolib import commands
from emolib import experiments as X

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "02-simple-cnn.ipynb"
TINY = {"max_per_class": 10, "epochs": 1, "batch_size": 16}


def write_grid(path: Path, fer2013_dir: Path, **experiment) -> Path:
    grid = {"defaults": {"dataset": "fer2013", "data": str(fer2013_dir), "epochs": 1},
            "experiments": [{"notebook": str(NOTEBOOK), **experiment}]}
    path.write_text(yaml.safe_dump(grid))
    return path


# ---------------------------------------------------------------------------------------------------
# Grid parsing (no notebook is executed)
# ---------------------------------------------------------------------------------------------------

def test_combinations_are_the_cartesian_product_in_order():
    combos = X.combinations({"backbone": ["a", "b"], "lr": [1, 2, 3]})
    assert len(combos) == 6
    assert combos[0] == {"backbone": "a", "lr": 1} and combos[-1] == {"backbone": "b", "lr": 3}
    assert X.combinations(None) == [{}]
    with pytest.raises(ValueError, match="must be a non-empty list"):
        X.combinations({"lr": 0.1})


def test_run_names_are_deterministic_distinct_and_path_safe():
    a = X.run_name("02-simple-cnn", {"backbone": "simple_cnn", "learning_rate": 0.001})
    assert a == "02-simple-cnn--backbone=simple_cnn--learning_rate=0.001"
    assert a == X.run_name("02-simple-cnn", {"backbone": "simple_cnn", "learning_rate": 0.001})
    odd = [X.run_name("x", {"augment": v}) for v in ({"flip": True}, {"flip": False}, "a/b c", None, True)]
    assert len(set(odd)) == len(odd)
    assert all("/" not in name and " " not in name for name in odd)


def test_grid_expands_with_defaults_parameters_and_run_dirs(tmp_path, fer2013_dir):
    path = write_grid(tmp_path / "g.yaml", fer2013_dir, parameters=TINY,
                      grid={"learning_rate": [0.001, 0.01], "seed": [0, 1]})
    grid = X.load_grid(path, tmp_path / "out")
    assert grid.name == "g" and len(grid.runs) == 4
    run = grid.runs[1]
    assert run.parameters["learning_rate"] == 0.001 and run.parameters["seed"] == 1
    assert run.parameters["max_per_class"] == 10 and run.parameters["dataset"] == "fer2013"
    assert run.run_dir == (tmp_path / "out" / "g" / run.name).resolve()
    assert run.parameters["run_dir"] == str(run.run_dir)


def test_unknown_parameter_fails_before_anything_runs(tmp_path, fer2013_dir):
    path = write_grid(tmp_path / "typo.yaml", fer2013_dir, grid={"learning_rat": [0.1]})
    with pytest.raises(ValueError, match="learning_rat"):
        X.load_grid(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_missing_grid_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no grid file at"):
        X.load_grid(tmp_path / "nowhere.yaml", tmp_path / "out")


def test_defaults_go_only_to_notebooks_that_declare_them(tmp_path, fer2013_dir):
    grid = {"defaults": {"epochs": 1, "data": str(fer2013_dir)},
            "experiments": [{"notebook": str(REPO / "notebooks" / "06-compare-runs.ipynb"),
                             "parameters": {"runs": ["${output}"]}}]}
    run = X.load_grid(grid, tmp_path).runs[0]
    assert "epochs" not in run.parameters and "data" not in run.parameters
    assert run.parameters["runs"] == [str((tmp_path / "grid").resolve())]


def fake_run(run, status="ok", parameters=None) -> None:
    run.run_dir.mkdir(parents=True)
    record = {"status": status, "parameters": run.parameters if parameters is None else parameters}
    (run.run_dir / "experiment.json").write_text(json.dumps(record))
    (run.run_dir / "params.json").write_text("{}")
    (run.run_dir / "model.json").write_text("{}")
    (run.run_dir / "metrics.json").write_text("{}")


def test_resume_rules_skip_rerun_and_start_afresh(tmp_path, fer2013_dir):
    def run_for(**parameters):
        path = write_grid(tmp_path / "g.yaml", fer2013_dir, parameters={**TINY, **parameters})
        return X.load_grid(path, tmp_path / "out").runs[0]

    run = run_for()
    fake_run(run)
    assert X.prepare_run(run) is False and run.status == "skipped"  # finished, same parameters
    assert X.prepare_run(run_for(), force=True) is True  # --force: afresh, the old run moved aside
    assert not run.run_dir.exists()
    fake_run(run, status="failed")
    assert X.prepare_run(run_for()) is True and (run.run_dir / "model.json").exists()  # resumed in place
    (run.run_dir / "experiment.json").write_text(json.dumps({"status": "ok", "parameters": run.parameters}))
    changed = run_for(batch_size=8)
    assert changed.run_dir == run.run_dir
    assert X.prepare_run(changed) is True and not run.run_dir.exists()  # parameters changed: afresh
    old = sorted((tmp_path / "out" / "g" / ".old").iterdir())
    assert len(old) == 2 and all(p.name.startswith(run.name) for p in old)
    assert X.find_runs([tmp_path / "out"]) == []  # moved-aside runs are not compared


# ---------------------------------------------------------------------------------------------------
# Execution: a 2-run grid, its summary, resume; a failing run mid-grid
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory, fer2013_dir):
    tmp = tmp_path_factory.mktemp("grid")
    path = write_grid(tmp / "two.yaml", fer2013_dir, parameters=TINY, grid={"learning_rate": [0.001, 0.01]})
    code = commands.main(["experiments", "run", str(path), "--output", str(tmp / "out")])
    return code, tmp / "out" / "two", path


@pytest.mark.slow
@pytest.mark.backend
def test_grid_runs_every_combination_into_its_run_directory(finished_grid):
    code, out, _ = finished_grid
    assert code == 0
    run_dirs = sorted(p for p in out.iterdir() if p.is_dir())
    assert [p.name for p in run_dirs] == ["02-simple-cnn--learning_rate=0.001",
                                          "02-simple-cnn--learning_rate=0.01"]
    for run_dir in run_dirs:
        assert X.is_finished(run_dir)
        for name in ("notebook.ipynb", "experiment.json", "metrics.json", "model.json", "curves.png",
                     "confusion.png", "report.txt", "history.csv"):
            assert (run_dir / name).is_file(), f"{run_dir.name}: {name} missing"
        params = json.loads((run_dir / "params.json").read_text())
        assert params["data"]["max_per_class"] == 10
        assert params["config"]["learning_rate"] == float(run_dir.name.split("=")[-1])
        executed = json.loads((run_dir / "notebook.ipynb").read_text())
        assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])
        outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert any("image/png" in o.get("data", {}) for o in outputs), "curves/confusion not shown inline"
        assert not any(o.get("output_type") == "error" for o in outputs)


@pytest.mark.slow
@pytest.mark.backend
def test_grid_notebooks_run_on_this_venvs_backend(finished_grid):
    """papermill's kernel is the venv's own: notebook 02 trains on the backend this venv was built for."""
    _, out, _ = finished_grid
    cards = [json.loads(path.read_text()) for path in out.glob("*/model.json")]
    assert len(cards) == 2 and {card["keras_backend"] for card in cards} == {os.environ["KERAS_BACKEND"]}


@pytest.mark.slow
def test_summary_table_has_numbers_in_range(finished_grid, tmp_path):
    _, out, _ = finished_grid
    assert commands.main(["experiments", "summary", str(out), "--save", str(tmp_path / "s.csv")]) == 0
    assert commands.main(["experiments", "summary", str(out), "--save", str(tmp_path / "s.md")]) == 0
    table = pd.read_csv(tmp_path / "s.csv")
    assert len(table) == 2 and set(table["backbone"]) == {"simple_cnn"}
    for column in ("accuracy", "balanced_accuracy", "macro_f1", "f1_angry", "f1_happy"):
        assert table[column].between(0, 1).all(), column
    assert (table["epochs_run"] == 1).all()
    assert (table["test_images"] == 7 * 2).all()  # max_per_class 10 → 2 test faces per class
    assert (table["parameters"] > 10_000).all() and (table["wall_time_s"] > 0).all()
    assert (table["peak_memory_mb"] > 50).all()
    markdown = (tmp_path / "s.md").read_text()
    assert "python -m emolib experiments run" in markdown  # the command that produced the runs
    assert markdown.count("| 02-simple-cnn--learning_rate=") == 2
    grid_summary = (out / "summary.md").read_text()
    assert "2 ran, 0 skipped" in grid_summary and "accuracy" in grid_summary


@pytest.mark.slow
def test_second_invocation_skips_finished_runs(finished_grid, tmp_path):
    _, out, path = finished_grid
    cards = {p: p.stat().st_mtime_ns for p in out.glob("*/model.json")}
    grid = X.run_grid(path, out.parent, progress=False)
    assert [run.status for run in grid.runs] == ["skipped", "skipped"]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/model.json")} == cards


@pytest.mark.slow
def test_failing_notebook_is_reported_and_the_grid_goes_on(tmp_path, fer2013_dir, capsys):
    path = write_grid(tmp_path / "bad.yaml", fer2013_dir, parameters=TINY,
                      grid={"backbone": ["no_such_backbone", "simple_cnn"]})
    code = commands.main(["experiments", "run", str(path), "--output", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 1
    assert "1 ran, 0 skipped (already finished), 1 failed" in printed
    assert ("FAILED 02-simple-cnn--backbone=no_such_backbone: "
            "ValueError: unknown backbone 'no_such_backbone'") in printed
    out = tmp_path / "out" / "bad"
    bad, good = out / "02-simple-cnn--backbone=no_such_backbone", out / "02-simple-cnn--backbone=simple_cnn"
    record = X.read_record(bad)
    assert record["status"] == "failed" and "no_such_backbone" in record["error"]
    assert (bad / "notebook.ipynb").is_file() and not X.is_finished(bad)
    assert X.is_finished(good)
    assert "FAILED 02-simple-cnn--backbone=no_such_backbone" in (out / "summary.md").read_text()
    table = X.runs_table(out)
    assert list(table["run"]) == [good.name]


# ---------------------------------------------------------------------------------------------------
# The notebooks themselves (nbval executes them; here: their parameters and that they are committed clean)
# ---------------------------------------------------------------------------------------------------

TRAINING = ["02-simple-cnn", "03-augmentation", "04-class-weights", "04b-logit-adjustment", "05-transfer"]
STANDARD = {"dataset", "data", "input_size", "channels", "epochs", "batch_size", "learning_rate",
            "max_per_class", "seed", "output", "run_dir"}


@pytest.mark.parametrize("stem", TRAINING)
def test_training_notebooks_declare_the_standard_parameters(stem):
    declared = X.notebook_parameters(REPO / "notebooks" / f"{stem}.ipynb")
    assert STANDARD <= declared, sorted(STANDARD - declared)


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebooks_are_committed_clean_with_one_parameters_cell(path):
    notebook = json.loads(path.read_text())
    tagged = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    # first of all: the project directory as cwd and TensorFlow's start-up log off (before any import of it)
    assert "notebook.setup()" in "".join(code[0]["source"])


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_papermill_sees_every_name_the_parameters_cell_assigns(path):
    # papermill drops a line it cannot parse (e.g. an "=" inside its comment): a grid naming that
    # parameter would then be refused as undeclared
    import ast

    notebook = json.loads(path.read_text())
    cell = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    assigned = {target.id for node in ast.parse("".join(cell["source"])).body
                if isinstance(node, (ast.Assign, ast.AnnAssign))
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(target, ast.Name)}
    assert assigned and assigned == X.notebook_parameters(path), assigned ^ X.notebook_parameters(path)


@pytest.mark.parametrize("grid", ["quick", "full"])
def test_grids_run_every_notebook_with_parameters_it_declares(grid):
    # load_grid refuses a missing notebook or a parameter the notebook does not declare
    loaded = X.load_grid(REPO / "experiments" / f"{grid}.yaml", output="unused")
    used = {Path(run.notebook).name for run in loaded.runs}
    assert used == {path.name for path in (REPO / "notebooks").glob("0[1-6]*.ipynb")}, used


def test_make_test_executes_every_notebook():
    # nbval runs each notebook (its defaults are smoke tests): a notebook that fails to run fails make test
    test_recipe = (REPO / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "--nbval-lax" in test_recipe and " notebooks" in test_recipe


# ---------------------------------------------------------------------------------------------------
# The study's pieces: a run's own parameters in a value, ideas with error bars, collected outputs
# ---------------------------------------------------------------------------------------------------

def test_a_value_may_name_the_runs_own_parameters(tmp_path):
    """04b adjusts the baseline run of its own seed: ${seed} is the run's parameter, ${output} the folder."""
    grid = {"name": "g", "experiments": [{
        "notebook": str(REPO / "notebooks" / "04b-logit-adjustment.ipynb"),
        "parameters": {"base_run": "${output}/02-simple-cnn--seed=${seed}", "also_test_on": "${nothing}"},
        "grid": {"seed": [0, 2]}}]}
    runs = X.load_grid(grid, tmp_path).runs
    out = (tmp_path / "g").resolve()
    assert [r.parameters["base_run"] for r in runs] == [f"{out}/02-simple-cnn--seed={s}" for s in (0, 2)]
    assert runs[0].parameters["also_test_on"] == "${nothing}"  # not a parameter: left as written
    assert all(r.reads_output for r in runs)


def _row(idea, seed, accuracy, **setup):
    return {"idea": idea, "seed": seed, "setup": json.dumps(setup, sort_keys=True), "dataset": "fer2013",
            "backbone": "simple_cnn", "input": "48x48x1", "weights": "none", "augment": False,
            "class_weights": "none", "targets": "auto", "accuracy": accuracy,
            "balanced_accuracy": accuracy / 2, "macro_f1": accuracy / 3, "f1_happy": accuracy,
            "ferplus_test_accuracy": accuracy + 0.1,
            "train_images": 25838, "test_images": 7178, "parameters": 683527, "epochs_run": 10 + seed,
            "wall_time_s": 100.0}


def test_ideas_have_the_mean_and_sd_over_seeds():
    table = pd.DataFrame([_row("baseline", s, a) for s, a in ((0, 0.5), (1, 0.6), (2, 0.7))] +
                         [_row("votes", 0, 0.8, targets="labels"), _row("votes", 0, 0.9, targets="votes"),
                          _row("big", 0, 0.4)])
    ideas = X.ideas_table(table).set_index("idea")
    assert list(ideas.index) == ["baseline", "votes (targets=labels)", "votes (targets=votes)", "big"]
    base = ideas.loc["baseline"]
    assert base["runs"] == 3 and base["seeds"] == "0 1 2" and base["epochs_run"] == 11
    assert base["accuracy_mean"] == pytest.approx(0.6) and base["accuracy_sd"] == pytest.approx(0.1)
    assert base["ferplus_test_accuracy_mean"] == pytest.approx(0.7)
    assert pd.isna(ideas.loc["big", "accuracy_sd"])
    markdown = X.ideas_markdown(X.ideas_table(table))
    assert "| baseline | simple_cnn | 3 | 25,838 | 7178 | 0.600 ± 0.100 |" in markdown
    assert "| big | simple_cnn | 1 | 25,838 | 7178 | 0.400 | 0.200 |" in markdown


@pytest.mark.slow
def test_collected_outputs_have_no_weights_and_summarise_by_idea(finished_grid, tmp_path):
    _, out, _ = finished_grid
    assert commands.main(["experiments", "collect", str(out), str(tmp_path / "runs")]) == 0
    copied = sorted(p.relative_to(tmp_path / "runs").as_posix() for p in (tmp_path / "runs").rglob("*"))
    assert not [p for p in copied if p.endswith((".keras", ".h5")) or "checkpoint" in p]
    for name in ("metrics.json", "model.json", "params.json", "history.csv", "experiment.json",
                 "notebook.ipynb"):
        assert f"02-simple-cnn--learning_rate=0.01/{name}" in copied
    assert commands.main(["experiments", "summary", str(tmp_path / "runs"), "--by-idea", "--save",
                          str(tmp_path / "s.md"), "--figure", str(tmp_path / "s.png")]) == 0
    text = (tmp_path / "s.md").read_text()
    assert "| 02-simple-cnn (learning_rate=0.001) |" in text and "## Every run" in text
    assert (tmp_path / "s.png").stat().st_size > 10_000
    record = json.loads((out / "02-simple-cnn--learning_rate=0.01" / "experiment.json").read_text())
    assert record["code_version"] and json.loads(
        (out / "02-simple-cnn--learning_rate=0.01" / "params.json").read_text())["code_version"]


def test_collecting_from_a_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert commands.main(["experiments", "collect", str(tmp_path / "none"), str(tmp_path / "out")]) == 2
    assert "no grid output folder at" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

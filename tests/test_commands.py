"""The command line lives in emolib.commands: library modules take explicit parameters, no module imports
one that imports it back, and every command turns a library's RuntimeError into one line and exit 2."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from emolib import commands

PACKAGE = Path(commands.__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    """``emolib/runs/splits.py`` → ``emolib.runs.splits`` (a package is its ``__init__.py``)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


#: every emolib module: its name → its file
MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (imports for type hints only)."""
    for node in ast.iter_child_nodes(tree):
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(test, ast.Name | ast.Attribute) and getattr(test, "id", getattr(test, "attr", "")) == \
                "TYPE_CHECKING":
            yield from (inner for branch in node.orelse for inner in (branch, *runtime_nodes(branch)))
            continue
        yield node
        yield from runtime_nodes(node)


def imported_modules(name: str) -> set[str]:
    """The emolib modules that module ``name`` imports, anywhere in its code (lazy imports in functions
    too, not those under ``if TYPE_CHECKING:``, which never run), with the packages that importing them
    runs (``emolib.runs.splits`` runs ``emolib.runs``), but for the packages that hold ``name`` (they are
    being imported already when ``name`` runs)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                parts = package.split(".")
                base = ".".join([*parts[:len(parts) - node.level + 1], base]).strip(".")
            targets.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                           for alias in node.names)
    found = set()
    for target in targets:
        while target and target not in MODULES:  # emolib.data.Listing → emolib.data
            target = target.rpartition(".")[0]
        while target:  # the module, and every package above it
            found.add(target)
            target = target.rpartition(".")[0]
    holders = {".".join(name.split(".")[:end]) for end in range(1, name.count(".") + 1)}
    return found - holders - {name}


def import_cycle() -> list[str] | None:
    """A chain of emolib modules, each importing the next, back to the first; None when there is none."""
    graph = {name: imported_modules(name) for name in MODULES}
    done: set[str] = set()

    def visit(name: str, chain: list[str]) -> list[str] | None:
        if name in chain:
            return chain[chain.index(name):] + [name]
        if name in done:
            return None
        for target in sorted(graph[name]):
            cycle = visit(target, [*chain, name])
            if cycle:
                return cycle
        done.add(name)
        return None

    return next((cycle for name in MODULES if (cycle := visit(name, []))), None)


def test_the_import_walk_sees_lazy_relative_and_package_imports():
    assert {"emolib.formats", "emolib.boxes", "emolib.photo_datasets"} <= imported_modules("emolib.data")
    assert {"emolib.runs", "emolib.runs.splits"} <= imported_modules("emolib.commands.adjust")
    assert "emolib.runs" not in imported_modules("emolib.runs.splits")  # its own package
    assert "emolib.explain" in imported_modules("emolib.commands.predict")  # imported inside a function
    assert "emolib.detect" not in imported_modules("emolib.crops")  # only under TYPE_CHECKING


def test_no_emolib_module_imports_one_that_imports_it_back():
    cycle = import_cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


#: the command line's modules: ``python -m emolib`` and emolib.commands
COMMAND_MODULES = {"emolib.__main__",
                   *(name for name in MODULES if name.split(".")[:2] == ["emolib", "commands"])}


def library_modules() -> dict[str, Path]:
    """Every emolib module but the command line's."""
    return {name: path for name, path in MODULES.items() if name not in COMMAND_MODULES}


def test_library_modules_read_no_command_line():
    for name, path in library_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imports |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        assert "argparse" not in imports, f"{name} imports argparse"
        names = {node.name for node in ast.walk(tree)
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
        assert "run_cli" not in names, f"{name} defines run_cli"
        assert not imported_modules(name) & COMMAND_MODULES, f"{name} imports emolib.commands"


#: for each command: a command line, and the library function (module, name) that it calls with it
LIBRARY_CALLS = {
    "data": (["--dataset", "fer2013", "--data", "x"], "emolib.data", "summarize"),
    "train": (["--dataset", "fer2013", "--data", "x"], "emolib.models", "get_backbone"),
    "evaluate": (["--dataset", "fer2013", "--data", "x"], "emolib.models", "load_model"),
    "adjust": (["run"], "emolib.runs.splits", "load_run_data"),
    "calibrate": (["run"], "emolib.runs.calibrate", "model_directory"),
    "average": (["run", "--last", "2"], "emolib.runs.splits", "load_run_data"),
    "ensemble": (["run", "run2"], "emolib.runs.splits", "load_run_data"),
    "export": (["run", "--to", "x"], "emolib.runs.export", "export_run"),
    "predict": (["x.jpg"], "emolib.predict", "EmotionPredictor"),
    "video": (["x.mp4", "--out", "x.csv"], "emolib.video", "open_video"),
    "experiments": (["summary"], "emolib.experiments.compare", "runs_table"),
    "serve": ([], "emolib.serve", "create_app"),
    "doctor": ([], "emolib.doctor", "report"),
    "backend": (["jax"], "emolib.backend", "write_backend_file"),
    "dashboard": ([], "emolib.dashboard", "run_room"),
}


def test_every_command_is_in_the_table_of_library_calls():
    assert set(LIBRARY_CALLS) == set(commands.COMMANDS)


@pytest.mark.parametrize("command", sorted(LIBRARY_CALLS))
def test_a_library_runtime_error_is_one_line_and_exit_2(command, monkeypatch, capsys):
    argv, module, name = LIBRARY_CALLS[command]
    calls = []

    def boom(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("boom")

    monkeypatch.setattr(importlib.import_module(module), name, boom)
    assert commands.main([command, *argv]) == 2
    assert calls, f"emolib {command} did not call {module}.{name}"
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"emolib {command}: error: boom"]
    assert "Traceback" not in captured.out

"""The docs match the code: README's "What's inside" table and docs/architecture.md's package map."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def table_paths(text: str, heading: str) -> list[Path]:
    """The paths named in the first column of the table under ``heading`` (``a/b.py``, ``c.py``: a/c.py)."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    found = []
    for row in re.findall(r"^\| ([^|]+) \|", section, flags=re.M):
        base = None
        for name in re.findall(r"`([^`]+)`", row):
            path = Path(name.split(" ")[0])
            if base is not None and len(path.parts) == 1 and "/" not in name:
                path = base / path
            base = path.parent if path.suffix else path
            found.append(path)
    return found


def emolib_modules() -> set[Path]:
    """emolib's top-level modules and subpackages, as repository paths."""
    package = REPO / "emolib"
    modules = {p.relative_to(REPO) for p in package.glob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    return modules | {p.relative_to(REPO) for p in package.iterdir() if (p / "__init__.py").is_file()}


def test_readme_whats_inside_names_existing_paths_and_every_module():
    paths = table_paths((REPO / "README.md").read_text(encoding="utf-8"), "## What's inside")
    missing = [str(p) for p in paths if not (REPO / p).exists() and "*" not in str(p)]
    assert not missing, f"README names paths that do not exist: {missing}"
    named = {p for p in paths} | {Path(str(p).rstrip("/")) for p in paths}
    assert not emolib_modules() - named, f"README's table misses {sorted(map(str, emolib_modules() - named))}"


def test_architecture_package_map_names_every_module():
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    paths = {Path(str(p).rstrip("/")) for p in table_paths(text, "## Package map")}
    unnamed = sorted(map(str, emolib_modules() - paths))
    assert not unnamed, f"docs/architecture.md misses {unnamed}"
    missing = [str(p) for p in paths if not (REPO / p).exists()]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_docs_name_every_registered_plug_in():
    from emolib import data, detect, models

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in [*data.list_datasets(), *models.list_backbones(), *detect.list_detectors()]:
        assert f"`{name}`" in readme, f"README does not name the registered {name!r}"

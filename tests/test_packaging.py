"""Packaging: environment.yml matches pyproject.toml, bad versions stay pinned out, start-up stays light."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
#: the extras environment.yml installs (gpu is the NVIDIA container's business)
ENV_EXTRAS = ("full", "cpu", "dev", "ray")
#: conda-side entries that are not project packages
CONDA_TOOLING = {"python", "pip"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_map(lines) -> dict[str, SpecifierSet]:
    """{normalised name: version specifiers}, extras and markers dropped; duplicates are an error."""
    result: dict[str, SpecifierSet] = {}
    for line in lines:
        requirement = Requirement(line)
        name = normalise(requirement.name)
        assert name not in result, f"{name} listed twice"
        result[name] = requirement.specifier
    return result


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def environment() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))


def pyproject_requirements(pyproject: dict) -> dict[str, SpecifierSet]:
    project = pyproject["project"]
    lines = list(project["dependencies"])
    for extra in ENV_EXTRAS:
        lines += project["optional-dependencies"][extra]
    return requirement_map(lines)


def environment_requirements(environment: dict) -> tuple[dict[str, SpecifierSet], list[str], list[str]]:
    """(package requirements from conda + pip sections, conda tooling entries, pip option lines)."""
    conda_lines, pip_lines, tooling, options = [], [], [], []
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            pip_lines += entry.get("pip", [])
        elif normalise(re.split(r"[<>=!~ ]", entry, maxsplit=1)[0]) in CONDA_TOOLING:
            tooling.append(entry)
        else:
            # conda's single "=" means "this version prefix"; written the pip way it is "==x.*"
            conda_lines.append(re.sub(r"(?<![<>=!~])=(?!=)([^,]+)", r"==\1.*", entry))
    packages = []
    for line in pip_lines:
        (options if line.startswith("-") else packages).append(line)
    return requirement_map(conda_lines + packages), tooling, options


def test_environment_lists_the_same_packages_as_pyproject(pyproject, environment):
    expected = pyproject_requirements(pyproject)
    actual, _, _ = environment_requirements(environment)
    assert sorted(actual) == sorted(expected), (
        f"only in pyproject: {sorted(set(expected) - set(actual))}; "
        f"only in environment.yml: {sorted(set(actual) - set(expected))}"
    )


def test_environment_uses_the_same_version_ranges_as_pyproject(pyproject, environment):
    expected = pyproject_requirements(pyproject)
    actual, _, _ = environment_requirements(environment)
    differing = {name: (str(expected[name]), str(actual[name]))
                 for name in expected.keys() & actual.keys() if expected[name] != actual[name]}
    assert not differing, f"version ranges differ (pyproject, environment.yml): {differing}"


def test_environment_python_is_allowed_by_pyproject_and_installs_emolib(pyproject, environment):
    _, tooling, options = environment_requirements(environment)
    pythons = [entry for entry in tooling if entry.startswith("python")]
    assert len(pythons) == 1, f"environment.yml should pin one python: {tooling}"
    version = pythons[0].split("=")[-1]
    assert version in SpecifierSet(pyproject["project"]["requires-python"]), pythons[0]
    assert "pip" in tooling
    assert any(re.fullmatch(r"-e \.(\[.*\])?", option) for option in options), (
        f"environment.yml's pip section should install emolib itself (-e .): {options}"
    )


def test_requirement_helpers_tell_ranges_and_names_apart():
    a = requirement_map(["Foo_Bar[x]>=1,<2"])
    b = requirement_map(["foo-bar>=1,<3"])
    assert a.keys() == b.keys() == {"foo-bar"}
    assert a["foo-bar"] != b["foo-bar"]
    with pytest.raises(AssertionError):
        requirement_map(["numpy", "NumPy>=1"])


def test_opencv_is_pinned_below_5(pyproject):
    # opencv-python-headless 5.x has no CascadeClassifier and no Haar files (docs/architecture.md, pitfalls)
    requirements = requirement_map(pyproject["project"]["dependencies"])
    specifier = requirements["opencv-python-headless"]
    assert "5.0.0" not in specifier and "5.1" not in specifier, f"opencv-python-headless{specifier}"
    assert "4.14.0" in specifier, f"opencv-python-headless{specifier} excludes the known-good 4.14"


def test_installed_opencv_has_the_detectors_emolib_uses():
    import cv2

    assert hasattr(cv2, "CascadeClassifier"), cv2.__version__
    assert hasattr(cv2, "FaceDetectorYN"), cv2.__version__
    assert Path(cv2.data.haarcascades, "haarcascade_frontalface_default.xml").is_file()


def imported_modules(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -X importtime ARGS``; return the process and the top-level modules it imported."""
    process = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    modules = set()
    for line in process.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return process, modules


HEAVY = {"tensorflow", "keras", "jax", "torch", "cv2", "pandas", "matplotlib", "sklearn"}


@pytest.mark.parametrize("args", [["--help"], ["doctor", "--help"], ["predict", "--help"]],
                         ids=["help", "doctor-help", "predict-help"])
def test_cli_help_does_not_import_heavy_libraries(args):
    process, modules = imported_modules("-m", "emolib", *args)
    assert process.returncode == 0, process.stderr[-2000:]
    assert "usage: emolib" in process.stdout
    assert "emolib" in modules, "importtime output not parsed: the check would be vacuous"
    assert not modules & HEAVY, f"CLI start-up imported {sorted(modules & HEAVY)}"


def module_imports(path: Path) -> set[str]:
    """The modules ``path`` imports when it is imported (its module-level imports, not those under
    ``if TYPE_CHECKING:`` or inside functions); ``from emolib import detect`` counts as ``emolib.detect``."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


#: Modules split out of a package or a facade, and what they must not import back: the package
#: (or facade) imports them, so importing it from them would be a cycle. crops.py is imported by
#: emolib.detect and by emolib.boxes, so it imports nothing of emolib.detect.
SPLIT_OFF = {
    **{f"emolib/detect/{name}.py": ("emolib.detect",) for name in ("base", "haar", "yunet")},
    "emolib/crops.py": ("emolib.detect", "emolib.detect."),
    **{f"emolib/{name}.py": ("emolib.models",) for name in ("layers", "backbones", "modelfiles")},
}


@pytest.mark.parametrize("module", sorted(SPLIT_OFF))
def test_split_modules_do_not_import_their_package_back(module):
    imports = module_imports(REPO / module)
    assert imports, "no imports parsed: the check would be vacuous"
    back = sorted(name for name in imports for banned in SPLIT_OFF[module]
                  if name == banned or (banned.endswith(".") and name.startswith(banned)))
    assert not back, f"{module} imports {back}"


# ---------------------------------------------------------------------------------------------------
# Dev containers
# ---------------------------------------------------------------------------------------------------


def load_jsonc(path: Path) -> dict:
    """devcontainer.json allows // comments (and trailing commas); strip them outside strings."""
    text = path.read_text(encoding="utf-8")
    out, i, in_string = [], 0, False
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\":
                out.append(text[i + 1])
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
            continue
        else:
            out.append(char)
        i += 1
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", "".join(out)))


def test_jsonc_loader_keeps_slashes_inside_strings(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": "x//y\\"", // comment\n "b": [1,],}', encoding="utf-8")
    assert load_jsonc(path) == {"a": 'x//y"', "b": [1]}


def test_gpu_devcontainer_keeps_nvidia_tensorflow():
    config = load_jsonc(REPO / ".devcontainer" / "gpu" / "devcontainer.json")
    assert config["image"] == "nvcr.io/nvidia/tensorflow:25.02-tf2-py3"
    assert "--gpus=all" in config["runArgs"] and "--shm-size=8g" in config["runArgs"]
    assert {8866, 5000} <= set(config["forwardPorts"])
    script = REPO / ".devcontainer" / "gpu" / "post-create.sh"
    assert str(script.relative_to(REPO)) in config["postCreateCommand"]
    text = script.read_text(encoding="utf-8")
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    install = [line for line in code if "pip install" in line]
    assert install, "post-create.sh installs nothing"
    for line in install:
        assert "-c " in line, f"install without the image's constraints: {line}"
        assert not re.search(r"\[[^\]]*\b(cpu|gpu)\b", line), f"installs a PyPI TensorFlow extra: {line}"
    assert "tensorflow|keras|numpy" in text
    assert config["containerEnv"]["PIP_CONSTRAINT"] in text, "PIP_CONSTRAINT: not the file post-create writes"
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def test_cpu_devcontainer_uses_make_setup():
    config = load_jsonc(REPO / ".devcontainer" / "cpu" / "devcontainer.json")
    assert config["image"].startswith("python:3.11")
    assert config["postCreateCommand"].startswith("make setup")
    assert {8866, 5000} <= set(config["forwardPorts"])


@pytest.mark.parametrize("flavour", ["gpu", "cpu"])
def test_devcontainers_mount_shared_where_emolib_looks(flavour):
    config = load_jsonc(REPO / ".devcontainer" / flavour / "devcontainer.json")
    targets = [dict(part.split("=", 1) for part in mount.split(",") if "=" in part)
               for mount in config["mounts"]]
    shared = [m for m in targets if m.get("source", "").endswith("/../shared")]
    assert len(shared) == 1, config["mounts"]
    assert config["containerEnv"]["EMOLIB_SHARED"] == shared[0]["target"]
    extensions = config["customizations"]["vscode"]["extensions"]
    assert {"ms-python.python", "ms-toolsai.jupyter"} <= set(extensions)


# ---------------------------------------------------------------------------------------------------
# The light install (pip install emolib) and the full one (emolib[full])
# ---------------------------------------------------------------------------------------------------


def metadata_lines(requirements, extra: str) -> list[str]:
    """Requirements as the wheel's metadata writes them (``Requires-Dist: NAME…; extra == "EXTRA"``)."""
    return [f'{line}; extra == "{extra}"' for line in requirements]


def test_the_full_extra_is_read_from_the_metadata_and_installed_here(pyproject):
    from emolib import install

    full = pyproject["project"]["optional-dependencies"][install.FULL_EXTRA]
    lines = pyproject["project"]["dependencies"] + metadata_lines(full, "full") + metadata_lines(
        pyproject["project"]["optional-dependencies"]["dev"], "dev")
    assert install.missing_full_requirements(lines) == [], "this venv is the full install"
    absent = metadata_lines(["emolib-no-such-dist>=1", "jupyter-bbox-widget>=0.6"], "full")
    assert install.missing_full_requirements(lines + absent) == ["emolib-no-such-dist"]
    assert install.missing_full_requirements(['emolib-no-such-dist; extra == "dev"']) == []


def test_a_light_install_names_the_full_install_and_what_it_lacks():
    from emolib import install

    lines = metadata_lines([f"emolib-no-such-dist-{i}" for i in range(6)], "full")
    expected = (r"^this command needs the full install: " + re.escape(install.FULL_INSTALL)
                + r".*missing here: emolib-no-such-dist-0, .* and 2 more$")
    with pytest.raises(install.FullInstallRequired, match=expected):
        install.require_full_install("this command", lines)
    install.require_full_install("this command", lines[:0])  # nothing missing: no error


def test_the_cli_refuses_workbook_commands_in_a_light_install_but_predicts(monkeypatch, capsys, photos_dir):
    from emolib import commands, install

    monkeypatch.setattr(install, "missing_full_requirements", lambda requirements=None: ["keras", "pandas"])
    assert commands.main(["data", "--dataset", "fer2013", "--data", "nowhere"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("emolib data: error: this command needs the full install: ")
    assert "missing here: keras, pandas" in error
    assert commands.main(["predict", str(photos_dir / "grace_hopper.jpg"), "--runtime", "keras"]) == 2
    assert "the Keras runtime (what runs a model without" in capsys.readouterr().err
    assert commands.main(["predict", str(photos_dir / "grace_hopper.jpg"), "--runtime", "onnx",
                          "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["faces_detected"] >= 1

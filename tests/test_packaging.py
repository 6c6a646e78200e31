"""environment.yml (conda) and pyproject.toml must list the same Python packages."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {_name(r): r.replace(" ", "") for r in reqs}


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_name(r): r.replace(" ", "") for r in pip_section if not r.startswith("-e")}


def test_same_packages_and_versions():
    assert environment_requirements() == pyproject_requirements()


def test_environment_pins_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]


def test_issue_named_dependencies_are_declared():
    names = set(pyproject_requirements())
    assert {"jupyterlab", "papermill", "nbconvert", "onnxruntime", "llama-cpp-python", "faster-whisper",
            "piper-tts", "numpy", "pandas", "seaborn", "jiwer", "psutil", "tqdm"} <= names


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(\./run\.sh \w+)", readme, flags=re.M)
    assert commands[:2] == ["./run.sh workbook", "./run.sh test"]
    assert "./run.sh test" in (ROOT / ".ci" / "run").read_text()

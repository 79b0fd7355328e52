"""environment.yml (conda) and pyproject.toml (pip) describe the same environment."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# pip name -> conda-forge name, where they differ
CONDA_NAMES = {"torch": "pytorch", "opencv-contrib-python-headless": "opencv"}


def _split(requirement: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", requirement.split("#")[0])
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in ("lessons", "dev", "serve", "fast") for r in project["optional-dependencies"][extra]]
    return dict(_split(r) for r in requirements)


def _environment() -> tuple[dict[str, str], dict[str, str], list]:
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = {}, {}
    for entry in spec["dependencies"]:
        if isinstance(entry, dict):
            pip.update(_split(r) for r in entry["pip"] if not r.startswith("-e"))
        else:
            name, version = _split(entry)
            conda[name] = version
    return conda, pip, spec["channels"]


def test_conda_environment_uses_conda_forge_only():
    _, _, channels = _environment()
    assert channels == ["conda-forge", "nodefaults"]


def test_every_pyproject_requirement_is_in_environment_yml_with_the_same_bound():
    conda, pip, _ = _environment()
    for name, version in _pyproject().items():
        conda_name = CONDA_NAMES.get(name, name)
        found = conda.get(conda_name, pip.get(name))
        assert found is not None, f"{name} ({conda_name} on conda-forge) is missing from environment.yml"
        assert found == version, f"{name}: pyproject says {version!r}, environment.yml says {found!r}"


def test_environment_yml_adds_nothing_beyond_python_and_pip():
    conda, pip, _ = _environment()
    expected = {CONDA_NAMES.get(name, name) for name in _pyproject()} | {"python", "pip"}
    assert set(conda) | set(pip) <= expected | set(_pyproject())
    assert set(conda) - expected == set()


def test_the_pip_section_installs_the_course_package():
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(entry["pip"] for entry in spec["dependencies"] if isinstance(entry, dict))
    assert "-e ." in pip

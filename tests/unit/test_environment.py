"""The environment is declared once (pyproject.toml), pinned once (requirements.lock), and
environment.yml, the Makefile and .ci/run stay in step with them."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from crmlens import paths

ROOT = paths.PROJECT_ROOT


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(r) for r in reqs]


def test_every_declared_dependency_is_pinned_in_the_lock_within_its_range():
    pins = lock_pins()
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not pinned in requirements.lock (run make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={pins[name]}, outside pyproject's {req.specifier} (run make lock)"
        )


def test_lock_has_hashes_for_every_pin():
    text = (ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", text)
    for block in blocks:
        if "==" in block.split("\n")[0]:
            assert "--hash=sha256:" in block, f"no hash for {block.splitlines()[0]}"


def test_environment_yml_installs_the_same_lock_on_the_same_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python == "python=3.11" and "3.11" in requires
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert pip == ["-r requirements.lock"], "environment.yml must install exactly requirements.lock"


def test_every_direct_dependency_is_justified_in_the_docs():
    text = (ROOT / "docs" / "dependencies.md").read_text().lower()
    for req in declared():
        assert f"`{req.name.lower()}`" in text, f"docs/dependencies.md does not say why {req.name} is needed"


def test_ci_runs_make_test_only():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[-1].strip() == "make test"


def test_makefile_documents_every_target_and_has_the_two_commands():
    text = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z_-]*):", text, re.M)
    documented = re.findall(r"^([a-z][a-z_-]*):.*## ", text, re.M)
    assert set(targets) == set(documented), f"targets without a '## help' comment: {set(targets) - set(documented)}"
    assert {"run", "test", "lab", "demo", "help"} <= set(targets)
    assert ".DEFAULT_GOAL := help" in text


def test_readme_first_screen_has_the_two_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    assert "make run" in first_screen and "make test" in first_screen

"""requirements.txt states pyproject.toml's runtime dependencies, the same pins."""

import pytest
from conftest import REPO_ROOT

tomllib = pytest.importorskip("tomllib", reason="tomllib is Python >= 3.11's")


def test_requirements_txt_lists_exactly_the_projects_dependencies():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pinned = {r.replace(" ", "") for r in project["dependencies"]}
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    listed = {line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()}
    # requirements.txt fell behind once (jax <0.12 while the project allowed <0.13).
    assert listed == pinned, (sorted(listed ^ pinned),)

"""DESIGN.md section 3's import direction, read from the source (nothing is imported or run).

Imports go downwards only. These are the cuts that the layout exists for:
the file format (codec/) does not depend on training, the renderers depend
on nothing above them, the training engine knows renderers but no objective,
and no library module reads command-line flags.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "gauss2d"

# Part -> the gauss2d modules (and their submodules) it may import.
ALLOWED = {
    "codec": ("gauss2d.codec", "gauss2d.gaussians", "gauss2d.render", "gauss2d.errors"),
    "render": ("gauss2d.render", "gauss2d.gaussians", "gauss2d.errors"),
    "train/engine.py": ("gauss2d.render", "gauss2d.errors"),
    "io": ("gauss2d.io", "gauss2d.gaussians", "gauss2d.errors"),
    "init": ("gauss2d.init", "gauss2d.gaussians", "gauss2d.render", "gauss2d.errors"),
}


def gauss2d_imports(path: pathlib.Path) -> set[str]:
    """Every gauss2d module a file imports, function-level imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            # ``from gauss2d import fit`` imports the module gauss2d.fit.
            base = node.module
            found.update(f"{base}.{a.name}" if base == "gauss2d" else base for a in node.names)
    return {name for name in found if name.split(".")[0] == "gauss2d"}


def files_of(part: str) -> list[pathlib.Path]:
    target = PACKAGE / part
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_part_imports_only_below_it(part):
    allowed = ALLOWED[part]
    for path in files_of(part):
        bad = sorted(
            name
            for name in gauss2d_imports(path)
            if not any(name == a or name.startswith(a + ".") for a in allowed)
        )
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {bad}; allowed: {allowed}"


def test_no_library_module_reads_flags():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "absl":
                assert all(a.name != "flags" for a in node.names), path
            if isinstance(node, ast.Import):
                assert all(a.name != "absl.flags" for a in node.names), path


RENDER = PACKAGE / "render"
# The render modules that the entry sits on: backends and what they share.
# None of them may import the entry's layer (or the package's own names).
RENDER_ABOVE_BACKENDS = ("gauss2d.render.entry", "gauss2d.render.display", "gauss2d.render.resolution")


def _is_render_submodule(name: str) -> bool:
    """Whether gauss2d.render.<name> is a module or package (not a name defined in __init__)."""
    return (RENDER / f"{name}.py").is_file() or (RENDER / name / "__init__.py").is_file()


def test_render_modules_never_import_back_up_into_the_package():
    # DESIGN.md section 3: "one registry (never imports back up)". Before issue
    # 22, render/pallas.py imported gauss2d.render (the package __init__) to
    # register itself; now the registry imports the backends, never the reverse.
    for path in sorted(RENDER.rglob("*.py")):
        if path == RENDER / "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import):
                assert all(a.name != "gauss2d.render" for a in node.names), where
            elif isinstance(node, ast.ImportFrom) and node.module == "gauss2d.render":
                bad = [a.name for a in node.names if not _is_render_submodule(a.name)]
                assert not bad, f"{where} imports {bad} from the gauss2d.render package itself"


def test_backends_and_the_registry_import_nothing_above_them():
    lower = [
        RENDER / "registry.py",
        RENDER / "reference.py",
        RENDER / "passes.py",
        RENDER / "alpha_passes.py",
    ]
    lower += sorted((RENDER / "xla").rglob("*.py")) + sorted((RENDER / "kernels").rglob("*.py"))
    for path in lower:
        bad = sorted(
            name
            for name in gauss2d_imports(path)
            if name in RENDER_ABOVE_BACKENDS or name.startswith("gauss2d.render.capacity")
        )
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {bad}, which sit above the backends"
    # The registry reaches the backends only by name, at lookup time.
    assert gauss2d_imports(RENDER / "registry.py") == set()


def test_render_sources_stay_small():
    for path in sorted(RENDER.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        assert lines <= 500, f"{path.relative_to(PACKAGE.parent)} has {lines} lines (house limit 500)"

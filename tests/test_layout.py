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
    "codec": ("gauss2d.codec", "gauss2d.gaussians", "gauss2d.render", "gauss2d.settings", "gauss2d.errors"),
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


def _module_name(path: pathlib.Path, package: pathlib.Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: pathlib.Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports (function-level imports included).

    ``from gauss2d.codec import v2`` is an edge to the module ``gauss2d.codec.v2``;
    ``from gauss2d.codec import encode`` to ``gauss2d.codec`` (the name's package).
    An edge to a module's own ancestor package is left out: Python runs a
    package's ``__init__`` before its submodules, and re-exports are not cycles.
    """
    modules = {_module_name(p, package): p for p in package.rglob("*.py")}

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(known(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    deps.add(full if full in modules else known(node.module))
        graph[name] = {d for d in deps if d and d != name and not name.startswith(d + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep, path + [dep])):
                return found
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name, [name])):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"

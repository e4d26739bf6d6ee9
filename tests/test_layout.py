"""DESIGN.md section 3's import direction, read from the source (nothing is imported or run).

Imports go downwards only. These are the cuts that the layout exists for:
the file format (codec/) does not depend on training, the renderers depend
on nothing above them, the training engine knows renderers but no objective,
and no library module reads command-line flags.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "gauss2d"

# Part -> the gauss2d modules (and their submodules) it may import.
ALLOWED = {
    "codec": ("gauss2d.codec", "gauss2d.gaussians", "gauss2d.render", "gauss2d.settings", "gauss2d.errors"),
    "render": ("gauss2d.render", "gauss2d.gaussians", "gauss2d.errors"),
    "train/engine.py": ("gauss2d.render", "gauss2d.errors", "gauss2d.settings"),
    "io": ("gauss2d.io", "gauss2d.gaussians", "gauss2d.errors"),
    "init": ("gauss2d.init", "gauss2d.gaussians", "gauss2d.render", "gauss2d.errors", "gauss2d.settings"),
    "settings.py": ("gauss2d.errors",),
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


# A name that holds a config (or a section of one): config, cfg, model_cfg, optim_cfg, ...
CONFIG_NAME = re.compile(r"(^|_)(config|cfg)$")


def config_key_reads(path: pathlib.Path) -> list[int]:
    """Lines of ``path`` that read a config key: ``config[...]`` or ``config.get(...)`` on a config name."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Subscript):
            target = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            target = node.func.value
        else:
            continue
        while isinstance(target, ast.Subscript):  # config["model"]["init"]
            target = target.value
        if isinstance(target, ast.Name) and CONFIG_NAME.search(target.id):
            lines.append(node.lineno)
    return lines


def files_reading_config() -> dict[str, list[int]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if lines := config_key_reads(path):
            found[str(path.relative_to(PACKAGE.parent))] = lines
    return found


def test_the_key_finder_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('a = config["model"]["init"]\nb = model_cfg.get("x", 1)\nc = settings.model.init\n')
    assert sorted(config_key_reads(sample)) == [1, 1, 2]


@pytest.mark.parametrize("part", ["train", "init", "runner", "io", "render", "codec"])
def test_parts_below_the_workflow_take_typed_settings_and_read_no_config_keys(part):
    reads = {f: lines for f, lines in files_reading_config().items() if f.startswith(f"gauss2d/{part}/")}
    assert not reads, f"config keys read in {reads} (file: line numbers); take gauss2d.settings instead"


def test_at_most_three_library_files_besides_settings_read_config_keys():
    reads = {f: lines for f, lines in files_reading_config().items() if f != "gauss2d/settings.py"}
    assert len(reads) <= 3, f"{len(reads)} library files read config keys: {reads}"


# Parts at or above the dataset runner (DESIGN.md section 3): the workflow.
WORKFLOW = ("runner", "compress", "rd", "video")


def test_nothing_below_the_runner_imports_it():
    for path in sorted(PACKAGE.rglob("*.py")):
        part = path.relative_to(PACKAGE).parts[0]
        if part in WORKFLOW:
            continue
        bad = sorted(
            n for n in gauss2d_imports(path) if n == "gauss2d.runner" or n.startswith("gauss2d.runner.")
        )
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {bad}: gauss2d/runner/ sits above it"


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


ROOT = PACKAGE.parent


def test_no_source_file_over_500_lines():
    # Issue 22: "No source file over 500 lines, the notebook builder included."
    for folder in ("gauss2d", "experiments", "configs", "benchmarks", "notebooks", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            lines = len(path.read_text().splitlines())
            assert lines <= 500, f"{path.relative_to(ROOT)} has {lines} lines (house limit 500)"


def test_binaries_are_thin():
    # Issue 22: every file in experiments/ is a thin binary of at most 100 lines.
    for path in sorted((ROOT / "experiments").glob("*.py")):
        lines = len(path.read_text().splitlines())
        assert lines <= 100, f"{path.relative_to(ROOT)} has {lines} lines: move the logic into gauss2d/"

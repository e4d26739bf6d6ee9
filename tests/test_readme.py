"""The README is a manual that stays true: short, its links resolve, its commands are CI's, its API runs.

Issue 22: the README is at most 300 lines; every relative link in README.md,
docs/*.md and notebooks/README.md points at a file that exists (and at a
heading that exists, where the link names one); the set-up and test commands
it gives are the ones .ci/run runs; the modules and config files its
commands name exist; and its Python API block runs as written (at the smoke
size it states).
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import shlex

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "notebooks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAX_LINES = 300

# [text](target) and ![alt](target); a target ends at whitespace or ")" (titles are not used here).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _text_outside_code(text: str) -> str:
    """The page without its fenced code blocks (a `[...](...)` inside code is not a link)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: pathlib.Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", _text_outside_code(page.read_text()), re.MULTILINE)
    return {_slug(h) for h in headings}


def _relative_links(page: pathlib.Path) -> list[str]:
    targets = LINK.findall(_text_outside_code(page.read_text()))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # not http:, mailto:, ...


def test_readme_is_at_most_300_lines():
    lines = README.read_text().count("\n")
    assert lines <= MAX_LINES, (
        f"README.md has {lines} lines; the manual is at most {MAX_LINES} (move the rest to docs/)"
    )


def test_link_checker_sees_links_and_slugs_like_github():
    # The checks below are only as good as the parsing: a pattern that matched nothing would pass them all.
    assert _slug("Mistakes and early stops") == "mistakes-and-early-stops"
    assert (
        _slug("Published curves (`gauss2d/rd/published.json`)") == "published-curves-gauss2drdpublishedjson"
    )
    assert LINK.findall("see [a](docs/x.md#y) and ![b](figures/p.png) and [c](https://e.org)") == [
        "docs/x.md#y",
        "figures/p.png",
        "https://e.org",
    ]
    assert len(_relative_links(README)) >= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file_and_heading(page):
    broken = []
    for target in _relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target} (no heading #{anchor} in {file.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def _ci_first_leg() -> list[str]:
    """The commands .ci/run runs for the README's set-up and tests (before its second leg)."""
    text = (ROOT / ".ci" / "run").read_text()
    first_leg = text.split("# Second leg")[0]
    lines = [line.split("#")[0].strip() for line in first_leg.splitlines()]
    return [line for line in lines if line and not line.startswith(("set ", "cd ", "export "))]


def _readme_shell_commands() -> list[str]:
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_setup_and_test_commands_are_the_ones_ci_runs():
    ci = _ci_first_leg()
    install = [c for c in ci if "pip install" in c]
    tests = [c for c in ci if "pytest" in c]
    assert len(install) == 1 and tests == ["python -m pytest -q"], ci
    # CI adds --quiet to keep its log short; otherwise the README's set-up is CI's, word for word.
    ci_install = [w for w in shlex.split(install[0]) if w != "--quiet"]
    quick_start = _readme_shell_commands()[:3]
    assert [shlex.split(quick_start[0]), quick_start[2]] == [ci_install, tests[0]], quick_start
    assert quick_start[1] == "python -m experiments.fit"  # the other of the two commands
    # The lint commands CI runs are the ones the README's "Tests and CI" names.
    text = README.read_text()
    for command in (c for c in ci if c.startswith("ruff")):
        assert f"`{command}`" in text.replace("\n", " "), command


def test_modules_and_configs_the_readme_runs_exist():
    commands = _readme_shell_commands() + re.findall(r"`(python -m [^`]+)`", README.read_text())
    modules = {m for c in commands for m in re.findall(r"python -m ([\w.]+)", c)} - {"pip", "pytest"}
    assert {"experiments.fit", "experiments.codec", "benchmarks.gpu_check"} <= modules
    for module in sorted(modules):
        assert importlib.util.find_spec(module) is not None, f"README runs python -m {module}: no such module"
    configs = {c for command in commands for c in re.findall(r"--config=(configs/[\w/]+\.py)", command)}
    assert configs, "the README names no config file"
    for config in sorted(configs):
        assert (ROOT / config).is_file(), f"README names {config}: no such file"


@pytest.mark.slow
def test_the_api_block_runs_as_written(capsys):
    blocks = re.findall(
        r"^## Python API\n.*?^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL
    )
    assert len(blocks) == 1, "the README's Python API section has one python block"
    scope: dict = {}
    exec(compile(blocks[0], str(README), "exec"), scope)  # noqa: S102 (our own documentation)
    h, w = scope["h"], scope["w"]
    assert scope["image"].shape == (h, w, 3) and scope["big"].shape == (4 * h, 4 * w, 3)
    assert len(scope["mine"].history["step"]) == 20
    decoded = scope["decoded"]
    assert (decoded.height, decoded.width) == (h, w)
    psnr, train_psnr = (float(v) for v in capsys.readouterr().out.split())
    # The block's own render of the fit and the fit's last training PSNR agree, and the fit learned.
    assert abs(psnr - train_psnr) < 0.1 and psnr > 20.0

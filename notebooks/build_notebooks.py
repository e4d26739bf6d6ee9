"""Writes notebooks/quickstart.ipynb and notebooks/compression.ipynb from the cells in nbbuild/.

    python notebooks/build_notebooks.py           # rewrite both notebooks (without outputs)
    python notebooks/build_notebooks.py --check   # exit 1 if a notebook's cells differ from nbbuild/
    python notebooks/build_notebooks.py --execute quickstart.ipynb   # run at real settings, store outputs

The notebooks are generated, not hand-edited, so that a change is a reviewable
diff of Python source. ``--execute`` runs the named notebooks (all without a
name) at their real settings in a fresh kernel of this interpreter, with this
checkout first on PYTHONPATH, in a temporary working directory; it stores the
outputs with figures re-encoded to at most ``nbbuild.execute.MAX_FIGURE_WIDTH`` px and, in the
notebook's metadata, the SHA-256 of the cells it ran (``source_digest``), the
commit and the date. tests/test_notebooks.py checks that the cells match the
builder and that stored outputs come from these very cells, and executes each
notebook on smoke settings.
"""

from __future__ import annotations

import pathlib
import sys

import nbformat

# Run as a script, this file's folder is first on sys.path, so the package beside it imports
# (tests/test_notebooks.py puts it there too). Named nbbuild, not build: PyPA's `build` package
# is often installed and would be found instead wherever this folder is not first.
from nbbuild import execute
from nbbuild.notebook import NOTEBOOKS, render_notebook, source_digest, without_outputs

__all__ = ["NOTEBOOKS", "main", "render_notebook", "source_digest", "without_outputs"]

HERE = pathlib.Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    """Writes, checks (``--check``) or executes (``--execute [NAME ...]``) the notebooks; the exit status."""
    if "--execute" in argv:
        names = [a for a in argv if not a.startswith("--")] or list(NOTEBOOKS)
        unknown = [n for n in names if n not in NOTEBOOKS]
        if unknown:
            print(f"unknown notebook(s) {unknown}; expected some of {list(NOTEBOOKS)}", file=sys.stderr)
            return 2
        for name in names:
            nb = execute.execute(name)
            (HERE / name).write_text(nbformat.writes(nb) + "\n")
            print(f"wrote {HERE / name} with outputs ({nb.metadata['gauss2d']['seconds']} s)")
        return 0
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        text = render_notebook(name)
        if check:
            stored = nbformat.reads(path.read_text(), as_version=4) if path.exists() else None
            if stored is None or without_outputs(stored) != text:
                stale.append(name)
        elif path.exists() and without_outputs(nbformat.reads(path.read_text(), as_version=4)) == text:
            print(f"unchanged {path} (its stored outputs are kept)")
        else:
            path.write_text(text)
            print(f"wrote {path} (without outputs: run --execute {name} to store them)")
    if stale:
        print(f"out of date: {', '.join(stale)}; run: python notebooks/build_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

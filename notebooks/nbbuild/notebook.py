"""Cells to notebooks: the exact text the builder writes, the cells' digest, outputs stripped."""

from __future__ import annotations

import hashlib
import json
import pathlib
import textwrap

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from . import compression, quickstart

NOTEBOOKS = {"quickstart.ipynb": quickstart.CELLS, "compression.ipynb": compression.CELLS}


def build(cells: list[tuple[str, str]], stem: str) -> nbformat.NotebookNode:
    """A notebook without outputs; cell ids are stable so that a rebuild gives the same file."""
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "colab": {"provenance": []},
        }
    )
    for i, (kind, source) in enumerate(cells):
        make = new_markdown_cell if kind == "md" else new_code_cell
        nb.cells.append(make(textwrap.dedent(source).strip("\n"), id=f"{stem}-{i:02d}"))
    nbformat.validate(nb)
    return nb


def build_named(name: str) -> nbformat.NotebookNode:
    """Notebook ``name`` (a key of ``NOTEBOOKS``) without outputs."""
    return build(NOTEBOOKS[name], pathlib.Path(name).stem)


def render_notebook(name: str) -> str:
    """The text of notebook ``name`` exactly as the builder writes it."""
    return nbformat.writes(build_named(name)) + "\n"


def source_digest(name: str) -> str:
    """SHA-256 of notebook ``name``'s cells as the builder writes them (kinds and sources)."""
    cells = [(kind, textwrap.dedent(source).strip("\n")) for kind, source in NOTEBOOKS[name]]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def without_outputs(nb: nbformat.NotebookNode) -> str:
    """The notebook's text with outputs, execution counts and execution metadata removed.

    For an executed notebook this is what ``render_notebook`` writes when its cells are current.
    """
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a deep copy
    nb.metadata.pop("gauss2d", None)
    for cell in nb.cells:
        cell.metadata = {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nbformat.writes(nb) + "\n"

"""The notebook builder behind notebooks/build_notebooks.py.

common: the Colab badge, the set-up cells and cell text both notebooks share;
quickstart, compression: one module of cells per notebook; notebook: cells to
an ``.ipynb`` (stable ids, the cells' digest, outputs stripped for comparison);
execute: a real-settings run that stores the outputs.

A notebook's cells are a list of ``(kind, source)`` with kind "md" or
"code". Changing a cell changes the notebook's digest, so its stored outputs
must then be re-executed (notebooks/README.md).
"""

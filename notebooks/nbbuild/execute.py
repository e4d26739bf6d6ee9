"""Executes a notebook at its real settings and stores its outputs (``build_notebooks.py --execute``)."""

from __future__ import annotations

import base64
import datetime
import io
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import nbformat

from . import notebook

REPO = pathlib.Path(__file__).resolve().parents[2]

MAX_FIGURE_WIDTH = 1200  # px; wider figures are scaled down when outputs are stored
MAX_FIGURE_BYTES = 250_000  # PNGs above this after scaling are reduced to a 256-colour palette


def shrink_png(b64: str) -> str:
    """A stored figure (base64 PNG) at most MAX_FIGURE_WIDTH wide, palette-reduced if still large."""
    from PIL import Image  # noqa: PLC0415 (a gauss2d dependency; only --execute needs it)

    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    if image.width > MAX_FIGURE_WIDTH:
        height = round(image.height * MAX_FIGURE_WIDTH / image.width)
        image = image.resize((MAX_FIGURE_WIDTH, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    if out.tell() > MAX_FIGURE_BYTES:
        out = io.BytesIO()
        image.convert("RGB").quantize(256).save(out, format="PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode()


def execute(name: str, timeout: int = 7200) -> nbformat.NotebookNode:
    """Runs notebook ``name`` at its real settings and returns it with its outputs stored.

    The kernel is this interpreter (a kernelspec in a temporary JUPYTER_PATH, nothing
    installed), with this checkout first on PYTHONPATH and GAUSS2D_NOTEBOOK_SMOKE unset,
    in a temporary working directory (the files a notebook writes are not kept).
    """
    import nbclient  # noqa: PLC0415 (the test extra: nbclient, ipykernel)

    nb = notebook.build_named(name)
    repo = REPO
    env_before = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        spec = pathlib.Path(tmp) / "jupyter" / "kernels" / "gauss2d-build"
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "gauss2d", "language": "python"})
        )
        work = pathlib.Path(tmp) / "work"
        work.mkdir()
        os.environ.pop("GAUSS2D_NOTEBOOK_SMOKE", None)
        os.environ["JUPYTER_PATH"] = str(pathlib.Path(tmp) / "jupyter")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env_before.get("PYTHONPATH")]))
        try:
            start = time.perf_counter()
            client = nbclient.NotebookClient(
                nb, timeout=timeout, kernel_name="gauss2d-build", resources={"metadata": {"path": str(work)}}
            )
            client.execute()
            seconds = time.perf_counter() - start
        finally:
            os.environ.clear()
            os.environ.update(env_before)
    for cell in nb.cells:
        cell.metadata = {}  # nbclient's timestamps: noise in a diff
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                output.data["image/png"] = shrink_png(output.data["image/png"])
    # The kernel's own details (this machine's Python version, its temporary kernelspec) are
    # not part of the notebook: keep the metadata that notebook.build() writes.
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    nb.metadata["gauss2d"] = {
        "sources_sha256": notebook.source_digest(name),
        "executed": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit.stdout.strip() or "unknown",
        "seconds": round(seconds),
        "smoke": False,
    }
    return nb

"""The Colab notebooks in notebooks/: static checks, and each one executed on smoke settings.

The static checks read the notebook JSON directly (no Jupyter needed). The slow
tests run every cell in a fresh kernel of this interpreter with
GAUSS2D_NOTEBOOK_SMOKE=1 (tiny fits), in a temporary working directory, then
check the machine-readable ``RESULT {...}`` line each notebook prints last and
the files it wrote.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pathlib
import sys

import numpy as np
import pytest

from gauss2d import codec, compress, metrics
from gauss2d.io import images as image_io

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NAMES = ("quickstart.ipynb", "compression.ipynb")
# Notebooks use the installed distribution's public API only; these are not shipped to users
# as a library (or not at all), so a notebook importing them would break on Colab.
FORBIDDEN_IMPORTS = {"tests", "experiments", "benchmarks"}
REPO_URL = "git+https://github.com/gauss2d/gauss2d"
SMOKE_LINE = 'SMOKE = os.environ.get("GAUSS2D_NOTEBOOK_SMOKE") == "1"'
KERNEL_NAME = "gauss2d-notebook-test"


def _notebook(name: str) -> dict:
    return json.loads((NOTEBOOK_DIR / name).read_text())


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _code_cells(nb: dict) -> list[str]:
    return [_source(c) for c in nb["cells"] if c["cell_type"] == "code"]


def _import_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add("." if node.level else node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("name", NAMES)
def test_first_code_cell_installs_from_github_on_colab_only(name):
    nb = _notebook(name)
    first = _code_cells(nb)[0]
    assert '"google.colab" in sys.modules' in first and REPO_URL in first and "pip" in first
    # Outside Colab the cell must do nothing but import: every other statement sits under the if.
    tree = ast.parse(first)
    ifs = [s for s in tree.body if isinstance(s, ast.If)]
    assert len(ifs) == 1 and "google.colab" in ast.unparse(ifs[0].test)
    assert all(isinstance(s, (ast.Import, ast.ImportFrom, ast.If)) for s in tree.body), first
    # The markdown just above says what to do in a clone instead.
    index = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    assert index > 0 and "pip install -e ." in _source(nb["cells"][index - 1])


def _build_module():
    pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[test]')")
    # The script imports its package (notebooks/nbbuild) from its own folder, as when run.
    if str(NOTEBOOK_DIR) not in sys.path:
        sys.path.insert(0, str(NOTEBOOK_DIR))
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOK_DIR / "build_notebooks.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


# Notebooks whose committed copy must hold the outputs of a real-settings run
# (``python notebooks/build_notebooks.py --execute NAME``).
EXECUTED = ("quickstart.ipynb", "compression.ipynb")
MAX_IMAGE_BYTES = 400_000  # per stored figure (build_notebooks.py shrinks them to ~250 kB)


@pytest.mark.parametrize("name", NAMES)
def test_stored_outputs_come_from_the_current_cells(name):
    nb = _notebook(name)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    executed = any(c["outputs"] or c["execution_count"] is not None for c in code)
    if not executed:
        assert name not in EXECUTED, f"notebooks/{name} must be stored executed: build_notebooks.py --execute"
        return
    meta = nb["metadata"].get("gauss2d", {})
    # The outputs were produced by exactly the cells the generator writes today.
    assert meta.get("sources_sha256") == _build_module().source_digest(name), (
        f"notebooks/{name}: its outputs come from other cells; run "
        f"python notebooks/build_notebooks.py --execute {name}"
    )
    assert meta.get("smoke") is False
    # One uninterrupted run, top to bottom, without errors.
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    outputs = [o for c in code for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "".join(
        "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
        for o in outputs
        if o["output_type"] == "stream"
    )
    results = [json.loads(line[len("RESULT ") :]) for line in text.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1 and results[0]["smoke"] is False
    images = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert images and all(len(i) * 3 // 4 <= MAX_IMAGE_BYTES for i in images)


@pytest.mark.parametrize("name", NAMES)
def test_imports_public_api_only_and_has_a_smoke_switch(name):
    cells = _code_cells(_notebook(name))
    roots = set()
    for source in cells:
        tree = ast.parse(source)  # also rejects IPython magics and shell escapes (Colab-only syntax)
        roots |= _import_roots(tree)
        assert "sys.path" not in source, "notebooks must import the installed package, not the checkout"
    assert not roots & FORBIDDEN_IMPORTS, roots & FORBIDDEN_IMPORTS
    assert "." not in roots
    assert {"gauss2d", "configs"} <= roots
    assert sum(SMOKE_LINE in source for source in cells) == 1


def test_notebooks_match_their_generator():
    build = _build_module()
    import nbformat  # noqa: PLC0415 (skipped above when missing)

    assert set(build.NOTEBOOKS) == set(NAMES)
    for name in NAMES:
        stored = nbformat.reads((NOTEBOOK_DIR / name).read_text(), as_version=4)
        assert build.without_outputs(stored) == build.render_notebook(name), (
            f"notebooks/{name} differs from what notebooks/build_notebooks.py writes: "
            "edit notebooks/nbbuild/ and run "
            "python notebooks/build_notebooks.py"
        )


# --------------------------------------------------------------------------- execution


def _kernel_for_this_interpreter(root: pathlib.Path) -> None:
    """A kernelspec that runs ``sys.executable``, found through JUPYTER_PATH (nothing installed).

    The ``python3`` spec could resolve to another interpreter where a user has installed
    their own; this one cannot.
    """
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "gauss2d tests", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


def _execute(name: str, workdir: pathlib.Path, jupyter_dir: pathlib.Path) -> tuple[dict, str]:
    """Runs every cell of notebook ``name`` in ``workdir``; returns (its RESULT dict, the kernel's Python)."""
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[test]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[test]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[test]')")
    _kernel_for_this_interpreter(jupyter_dir)
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint('KERNEL_PYTHON', sys.executable)"))
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name=KERNEL_NAME, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    lines = [
        line
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
        for line in output["text"].splitlines()
    ]
    results = [json.loads(line[len("RESULT ") :]) for line in lines if line.startswith("RESULT ")]
    kernels = [line.split(" ", 1)[1] for line in lines if line.startswith("KERNEL_PYTHON ")]
    assert len(results) == 1, f"{name} printed {len(results)} RESULT lines"
    return results[0], kernels[0]


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory) -> pathlib.Path:
    """A compilation cache shared by the notebooks' kernels in this module.

    Smoke runs are mostly XLA compilation, and both notebooks fit 300 Gaussians to the
    sample with the same settings, so the second reuses the first's content initialiser
    and training chunk (~20 s less on 2 cores). Fresh per test session.
    """
    return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture
def smoke_env(tmp_path, monkeypatch, jax_cache) -> tuple[pathlib.Path, pathlib.Path]:
    """(working directory, Jupyter data directory); the kernel inherits this environment."""
    monkeypatch.setenv("GAUSS2D_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(jax_cache))
    jupyter_dir = tmp_path / "jupyter"
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_dir))
    # The checkout under test, not some other installed copy of gauss2d (CI installs it editable).
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    return workdir, jupyter_dir


def _execute_smoke(name, smoke_env):
    """Runs notebook ``name`` on smoke settings in this interpreter's kernel; its RESULT and workdir."""
    workdir, jupyter_dir = smoke_env
    result, kernel_python = _execute(name, workdir, jupyter_dir)
    assert kernel_python == sys.executable
    assert result["smoke"] is True
    return result, workdir


@pytest.mark.slow
def test_quickstart_runs_on_smoke_settings(smoke_env):
    result, _ = _execute_smoke("quickstart.ipynb", smoke_env)
    # configs/default.py:smoke, on the 384x256 sample.
    assert (result["height"], result["width"]) == (256, 384)
    assert (result["num_gaussians"], result["steps"]) == (300, 60)
    # ~23.1 dB and MS-SSIM ~0.79 measured; an init or optimiser regression falls well below.
    assert result["psnr"] > 21.0
    assert 0.6 < result["ms_ssim"] <= 1.0
    # The notebook's final render is the model the training history describes.
    assert abs(result["psnr"] - result["train_psnr"]) < 0.5
    assert result["render_4x_shape"] == [1024, 1536, 3]
    assert result["render_quarter_shape"] == [64, 96, 3]


@pytest.mark.slow
def test_compression_runs_on_smoke_settings(smoke_env):
    result, workdir = _execute_smoke("compression.ipynb", smoke_env)
    height, width = result["height"], result["width"]
    # The file the notebook wrote, in its working directory, is what it reports.
    path = workdir / "kodim23.g2d"
    assert pathlib.Path(result["file"]) == path.resolve()
    data = path.read_bytes()
    assert result["bytes"] == len(data)
    assert result["bpp"] == pytest.approx(8 * len(data) / (height * width), rel=1e-12)
    assert result["summary_bpp"] == pytest.approx(result["bpp"], rel=1e-12)
    decoded = codec.decode(data)
    assert (decoded.height, decoded.width) == (height, width) == (256, 384)
    assert decoded.params.xy.shape[0] == result["num_gaussians"] <= 300
    # Smoke fits are blurry (~21.5 dB); the decoder's render is what compress_image measured.
    assert result["psnr"] > 18.0
    assert result["psnr"] == pytest.approx(result["summary_psnr"], abs=1e-3)
    # The version-2 file (configs/codec.py's default); its bits by section are the file's bytes.
    assert result["version"] == data[4] == 2
    assert result["bits"] == codec.bits_by_attribute(data)
    assert (
        result["bits"]["total"] == 8 * len(data) == sum(v for k, v in result["bits"].items() if k != "total")
    )
    # The entropy-coded file beats the fixed-length GaussianImage layout of the same Gaussians.
    assert result["bytes"] < result["gaussianimage_bytes"]
    # WebP (and AVIF where Pillow has it): real files at several qualities, sorted by rate.
    assert "webp" in result["baselines"]
    for points in result["baselines"].values():
        bpp = [p["bpp"] for p in points]
        assert len(bpp) >= 2 and bpp == sorted(bpp)
    # The Kodak RD figure was read from the checkout and shown.
    figure = REPO_ROOT / "docs" / "figures" / "rd_kodak_cpu_v2_psnr.png"
    assert result["figure_bytes"] == figure.stat().st_size
    # The 4-layer v3 file: each prefix is the shortest cut that decodes to k whole layers, the
    # last is the whole file, and its PSNR is the full decode's; a cut between layers 2 and 3
    # decodes to 2 of 4 layers.
    layers = result["layers"]
    layered_path = workdir / "kodim23_layers.g2d"
    assert pathlib.Path(layers["file"]) == layered_path.resolve()
    blob = layered_path.read_bytes()
    assert blob[4] == 3 and layers["bytes"] == len(blob)
    cuts = layers["prefix_bytes"]
    assert len(cuts) == 4 and cuts == sorted(set(cuts)) and cuts[-1] == len(blob)
    for k, (cut, n) in enumerate(zip(cuts, layers["prefix_gaussians"]), start=1):
        prefix = codec.decode(blob[:cut])
        assert (prefix.layers, prefix.total_layers, prefix.params.xy.shape[0]) == (k, 4, n)
        shorter = blob[: cut - 1]
        assert k == 1 or codec.decode(shorter).layers == k - 1
    assert layers["prefix_gaussians"][-1] == codec.decode(blob).params.xy.shape[0]
    assert cuts[1] < layers["cut_at"] < cuts[2] and layers["cut_layers"] == 2
    assert codec.decode(blob[: layers["cut_at"]]).truncated
    assert all(p > 10.0 for p in layers["prefix_psnr"])
    full = np.asarray(compress.decode_and_render(blob)[0])
    target = image_io.load_image(image_io.sample_image_path())
    assert layers["prefix_psnr"][-1] == pytest.approx(float(metrics.psnr(full, target)), abs=1e-4)
    figure = REPO_ROOT / "docs" / "figures" / "codec_layers.png"
    assert layers["figure_bytes"] == figure.stat().st_size

"""SVG input through the binaries: a fit of a folder of SVGs, any-size rendering, and one error line each."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT
from PIL import Image

pytest.importorskip("resvg_py")

pytestmark = pytest.mark.slow

ASSETS = REPO_ROOT / "gauss2d" / "assets" / "svg"
SMALL = ["--config.optim.iterations=40", "--config.model.num_points=150"]
NS = 'xmlns="http://www.w3.org/2000/svg"'
BAD = {
    "malformed": f'<svg {NS} width="10" height="10"><g></svg>',
    "no_size": f"<svg {NS}><rect width='5' height='5'/></svg>",
    "too_large": f'<svg {NS} width="200000" height="150000"/>',
    "external": f'<svg {NS} width="10" height="10"><image href="http://example.com/a.png"/></svg>',
}


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def test_fit_a_folder_of_svgs_then_render_it_at_another_size(tmp_path):
    folder = tmp_path / "svgs"
    folder.mkdir()
    (folder / "flat_shapes.svg").write_text((ASSETS / "flat_shapes.svg").read_text())
    workdir = tmp_path / "run"
    proc = run(
        "experiments.fit", "--config=configs/default.py:smoke", *SMALL, f"--config.data.dir={folder}",
        f"--workdir={workdir}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads((workdir / "results.json").read_text())["images"][0]
    # Fitted against the 4x grid (io/svg.py DEFAULT_SUPERSAMPLE): the frame is 4x the SVG's 160 x 120.
    assert (row["name"], row["height"], row["width"]) == ("flat_shapes", 480, 640)
    assert row["psnr"] > 15.0  # 40 steps of 150 Gaussians: far from done, far from nothing
    out = tmp_path / "big.png"
    proc = run("experiments.render", str(workdir / "flat_shapes" / "params.npz"), str(out), "--scale=0.5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert Image.open(out).size == (320, 240)  # 2x the SVG's own size


def test_fit_with_a_bad_svg_ends_in_one_error_line(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "ext.svg").write_text(BAD["external"])
    proc = run(
        "experiments.fit", "--config=configs/default.py:smoke", *SMALL, f"--config.data.dir={folder}",
        f"--workdir={tmp_path / 'run'}",
    )  # fmt: skip
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert "ext.svg" in line and "external reference" in line


@pytest.mark.parametrize("case", sorted(BAD))
def test_codec_encode_of_a_bad_svg_is_one_error_line(tmp_path, case):
    source = tmp_path / f"{case}.svg"
    source.write_text(BAD[case])
    output = tmp_path / "out.g2d"
    proc = run("experiments.codec", "encode", str(source), str(output), "--config=configs/codec.py:smoke")
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert source.stem in line  # the fit's memory check names the image by its stem
    assert not output.exists()

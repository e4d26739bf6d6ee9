"""``experiments.codec encode --layers`` / ``decode --layers``: progressive v3 files end to end."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_codec_cli import TINY, assert_one_line_error, run

from gauss2d.codec import decode
from gauss2d.io import images as data
from gauss2d.render import render_clamped

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v3cli")
    source = folder / "crop.png"
    data.save_image(source, data.load_image(data.sample_image_path())[60:100, 200:252])
    out = folder / "crop.g2d"
    proc = run("experiments.codec", "encode", str(source), str(out), *TINY, "--layers=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_layered_encode_and_decode(layered, tmp_path):
    out, proc = layered
    blob = out.read_bytes()
    full = decode(blob)
    assert blob[4] == 3 and (full.layers, full.total_layers) == (3, 3)
    assert f"wrote {out}: {len(blob)} bytes" in proc.stdout
    png = tmp_path / "first.png"
    proc = run("experiments.codec", "decode", str(out), str(png), "--layers=1")
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr[-3000:]
    first = decode(blob, layers=1)
    expected = np.round(np.asarray(render_clamped(first.params, 40, 52)) * 255.0).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")), expected)
    # A preview at half size of the first layer, anti-aliased through the render entry.
    small = tmp_path / "small.png"
    proc = run("experiments.codec", "decode", str(out), str(small), "--layers=1", "--scale=0.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Image.open(small).size == (26, 20)


def test_truncated_and_too_short_files(layered, tmp_path):
    out, _ = layered
    blob = out.read_bytes()
    cut = tmp_path / "cut.g2d"
    cut.write_bytes(blob[:-5])  # the last layer is cut short
    proc = run("experiments.codec", "decode", str(cut), str(tmp_path / "cut.png"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip() == "decoded 2 of 3 layers (file truncated)"
    short = tmp_path / "short.g2d"
    short.write_bytes(blob[:12])
    proc = run("experiments.codec", "decode", str(short), str(tmp_path / "short.png"))
    assert proc.returncode == 2
    assert_one_line_error(proc, "truncated v3 file")

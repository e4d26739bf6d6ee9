"""Small inputs that ask for a lot (issue 15): every one is refused or bounded before it allocates."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
from conftest import REPO_ROOT
from test_data import _png16_bytes

from benchmarks import hostile_inputs
from gauss2d import data
from gauss2d.codec import budget, decode
from gauss2d.errors import ImageError


@pytest.fixture(scope="module")
def many_small():
    """2^16 Gaussians in a ~4 KB file."""
    return hostile_inputs.many_gaussians_file(2**16, seed=1)


def test_library_decode_honours_its_budget(many_small):
    with pytest.raises(budget.MemoryBudgetError, match=r"65536 Gaussians.*GiB.*memory_limit_gb=0.001"):
        decode(many_small, memory_limit_gb=0.001)
    assert decode(many_small, memory_limit_gb=None).params.xy.shape == (2**16, 2)
    # The default budget (the fit's 16 GiB) lets it through.
    assert decode(many_small).params.chol.shape == (2**16, 3)


def test_decode_memory_is_a_small_multiple_of_the_parameters():
    # The int64 copies of every index made the peak ~5.4x the float32
    # parameters (32 B per Gaussian); the indices are uint16 now.
    n = 2**20
    blob = hostile_inputs.many_gaussians_file(n)
    tracemalloc.start()
    try:
        decoded = decode(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    own = 32 * n
    assert decoded.params.xy.shape == (n, 2)
    assert peak < 2.5 * own, f"decode peak {peak / own:.2f}x the parameters"
    header = budget.read_header(blob)
    assert budget.decode_bytes(header, len(blob)) > peak  # the estimate is an upper bound


def _codec_decode(*args):
    return subprocess.run(
        [sys.executable, "-m", "experiments.codec", "decode", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_line(proc, *fragments):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.slow
def test_codec_decode_refuses_a_file_over_the_budget_from_its_header(tmp_path, many_small):
    big = tmp_path / "big.g2d"
    big.write_bytes(hostile_inputs.large_side_file(65536))  # ~240 bytes declaring 65536 x 65536
    out = tmp_path / "out.png"
    _one_line(_codec_decode(big, out), "big.g2d", "65536x65536", "GiB", "--memory_limit_gb=16")
    assert not out.exists()
    # The flag sets the budget: the same refusal for a small file under a tiny budget ...
    small = tmp_path / "small.g2d"
    small.write_bytes(hostile_inputs.large_side_file(64))
    _one_line(_codec_decode(small, out, "--memory_limit_gb=0.0001"), "--memory_limit_gb=0.0001")
    # ... which decodes under the default one.
    proc = _codec_decode(small, out)
    assert proc.returncode == 0 and out.exists(), proc.stderr[-2000:]


@pytest.mark.slow
def test_codec_decode_checks_the_pair_buffer_before_rendering(tmp_path, many_small):
    # 2^16 Gaussians at 256 x 256 need >= 2^16 tile pairs: refused from the
    # header under a budget that the pixels alone would fit in.
    path = tmp_path / "many.g2d"
    path.write_bytes(many_small)
    needed = budget.render_bytes(256, 256, 2**16, 2**16, 8)
    limit = needed / 2**30 / 2
    _one_line(_codec_decode(path, tmp_path / "o.png", f"--memory_limit_gb={limit}"), "65536 Gaussians")


def test_png16_stream_is_inflated_only_as_far_as_the_header_needs(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(hostile_inputs.png16_bomb(256))  # ~260 KB, 64 x 64, inflates to 256 MiB
    tracemalloc.start()
    try:
        image = data.load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert image.shape == (64, 64, 3) and not image.any()
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_load_image_checks_the_size_in_the_header_first(tmp_path):
    path = tmp_path / "flat.png"
    path.write_bytes(hostile_inputs.flat_png(3000, 2000))
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match=r"flat\.png.*3000x2000.*memory_limit_gb=0\.01"):
            data.load_image(path, memory_limit_gb=0.01)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # refused before any pixel was decoded
    assert data.load_image(path).shape == (2000, 3000, 3)
    assert data.load_bytes(3000, 2000) < 0.5 * 2**30 < data.load_bytes(3000, 2000) * 100


@pytest.mark.parametrize("height,width", [(17, 40), (40, 17), (1, 33), (33, 1)])
def test_png16_reader_decodes_every_filter_in_both_layouts(tmp_path, height, width):
    # _png16_bytes uses filter y % 5 on row y; landscape and portrait images
    # take the two sides of the anti-diagonal decoder.
    pixels = np.random.default_rng(height * width).integers(0, 65536, (height, width, 3), dtype=np.uint16)
    path = tmp_path / "f.png"
    path.write_bytes(_png16_bytes(pixels))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = data.load_image(path)
    np.testing.assert_array_equal(np.round(image * 65535.0).astype(np.uint16), pixels)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["encode", "decode"])
def test_codec_output_under_a_regular_file_is_refused_before_any_work(tmp_path, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    source = tmp_path / "in.g2d"
    if command == "encode":
        source = data.sample_image_path()
    else:
        source.write_bytes(hostile_inputs.large_side_file(32))
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.codec", command, str(source), str(blocker / "sub" / "out")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    _one_line(proc, "a_file' is a file, not a folder")
    assert "step" not in proc.stdout  # refused before fitting

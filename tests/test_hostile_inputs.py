"""Small inputs that ask for a lot (issue 15): every one is refused or bounded before it allocates."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
from conftest import REPO_ROOT
from test_data import _png16_bytes

from benchmarks import hostile_inputs
from gauss2d.codec import budget, decode
from gauss2d.errors import ImageError
from gauss2d.io import images as data


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


def _fit_error(proc, *fragments):
    """experiments.fit logs its config to stderr (absl INFO): one ``error:`` line, exit 2, no traceback."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def assert_one_line(proc, *fragments):
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
    assert_one_line(_codec_decode(big, out), "big.g2d", "65536x65536", "GiB", "--memory_limit_gb=16")
    assert not out.exists()
    # The flag sets the budget: the same refusal for a small file under a tiny budget ...
    small = tmp_path / "small.g2d"
    small.write_bytes(hostile_inputs.large_side_file(64))
    assert_one_line(_codec_decode(small, out, "--memory_limit_gb=0.0001"), "--memory_limit_gb=0.0001")
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
    assert_one_line(_codec_decode(path, tmp_path / "o.png", f"--memory_limit_gb={limit}"), "65536 Gaussians")


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
    assert_one_line(proc, "a_file' is a file, not a folder")
    assert "step" not in proc.stdout  # refused before fitting


def _fit(*args, timeout=900):
    """experiments.fit under /usr/bin/time: (process, peak RSS in bytes)."""
    proc = subprocess.run(
        ["/usr/bin/time", "-q", "-f", "peak_kb=%M", sys.executable, "-m", "experiments.fit", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = proc.stderr.strip().splitlines()
    peak = int(lines[-1].split("=")[1]) * 1024 if lines and lines[-1].startswith("peak_kb=") else None
    proc.stderr = "\n".join(lines[:-1]) + "\n" if peak is not None else proc.stderr
    return proc, peak


SMOKE = ["--config=configs/default.py:smoke", "--config.optim.iterations=40", "--config.model.num_points=150"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--config.model.nosuchkey=3"], ["nosuchkey"]),  # no --config: three chained tracebacks before
        (
            ["--config=configs/default.py:smoke", "--config.model.num_points=abc"],
            ["num_points=abc"],
        ),  # exit 1
        (["--config=configs/default.py:smoke", "--workdir=/etc/hostname/w"], ["'/etc/hostname' is a file"]),
    ],
)
def test_fit_mistakes_are_one_line_and_exit_2_before_any_work(args, fragments):
    proc, _ = _fit(*args)
    _fit_error(proc, *fragments)
    assert "step" not in proc.stdout


@pytest.mark.slow
def test_fit_checks_memory_from_the_header_before_loading_or_initialising(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "flat.png").write_bytes(hostile_inputs.flat_png(9000, 9000))  # ~80 KB
    proc, peak = _fit(*SMOKE, f"--config.data.dir={folder}", f"--workdir={tmp_path / 'w'}")
    _fit_error(proc, "flat", "9000x9000", "GiB", "memory_limit_gb")
    # Before: the content initialisation tried to allocate 16.7 GB first.
    assert peak < 1.0 * 2**30, f"{peak / 2**30:.2f} GiB"


@pytest.mark.slow
def test_a_collapse_stops_the_fit_says_so_and_json_stays_strict(tmp_path):
    # lr_cov=1e3 collapsed every Gaussian at step 2 (20.6 -> 3.9 dB) and the
    # run said "done". An all-black image is fitted exactly: PSNR +inf.
    folder = tmp_path / "images"
    folder.mkdir()
    sample = data.load_image(data.sample_image_path())
    data.save_image(folder / "a_crop.png", sample[40:88, 100:172])
    data.save_image(folder / "b_black.png", np.zeros((24, 32, 3), np.float32))
    workdir = tmp_path / "w"
    proc, _ = _fit(*SMOKE, "--config.optim.lr_cov=1e3", f"--config.data.dir={folder}", f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "a_crop stopped early: diverged" in proc.stderr and "keeping the parameters of step 0" in proc.stderr
    )

    def strict(path):
        return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {path}"))

    results = strict(workdir / "results.json")
    rows = {r["name"]: r for r in results["images"]}
    assert rows["a_crop"]["stopped_early"].startswith("diverged:")
    assert rows["a_crop"]["psnr"] > 15  # the initial state's ~20 dB, not the collapsed 3.9 dB
    assert rows["b_black"]["psnr"] is None and rows["b_black"]["psnr_nonfinite"] == "inf"
    assert "stopped_early" not in rows["b_black"]

    # A damaged result.json is redone (from the final checkpoint), and says so.
    (workdir / "a_crop" / "result.json").write_text('{"name": "a_cr')
    proc, _ = _fit(*SMOKE, "--config.optim.lr_cov=1e3", f"--config.data.dir={folder}", f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "result.json' is damaged (JSONDecodeError" in proc.stdout and "redoing that image" in proc.stdout
    assert strict(workdir / "a_crop" / "result.json")["name"] == "a_crop"

"""``python -m experiments.codec`` and ``experiments.compress`` end to end: files, refusals, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from gauss2d import gaussians, metrics
from gauss2d.codec import decode
from gauss2d.io import checkpoint
from gauss2d.io import images as data
from gauss2d.render import render_clamped

pytestmark = pytest.mark.slow

TINY = [
    "--config=configs/codec.py:smoke",
    "--config.model.num_points=60",
    "--config.optim.iterations=30",
    "--config.log_every=10",
    "--config.codec.qat_steps=10",
    "--config.model.init=random",  # the content initialiser compiles for ~15 s on CPU
]


def run(module, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 40 x 52 crop of the sample, written as a PNG outside the repository."""
    path = tmp_path_factory.mktemp("src") / "crop.png"
    data.save_image(path, data.load_image(data.sample_image_path())[60:100, 200:252])
    return path


@pytest.fixture(scope="module")
def encoded(source, tmp_path_factory):
    folder = tmp_path_factory.mktemp("codec")
    out, summary = folder / "crop.g2d", folder / "summary.json"
    proc = run("experiments.codec", "encode", str(source), str(out), *TINY, f"--results={summary}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(summary.read_text()), proc


def test_encode_then_decode_round_trip(source, encoded, tmp_path):
    out, summary, proc = encoded
    blob = out.read_bytes()
    assert f"wrote {out}" in proc.stdout and "qat step" in proc.stdout  # progress lines
    decoded = decode(blob)
    assert (decoded.height, decoded.width) == (40, 52) and decoded.params.xy.shape == (60, 2)
    assert summary["bytes"] == len(blob) and summary["bpp"] == pytest.approx(8 * len(blob) / (40 * 52))
    assert summary["mode"] == "entropy" and "gaussianimage" not in summary  # the baseline only when asked

    png = tmp_path / "crop_decoded.png"
    proc = run("experiments.codec", "decode", str(out), str(png))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The PNG is the decoder's render of the file, rounded to 8 bits.
    expected = np.round(np.asarray(render_clamped(decoded.params, 40, 52)) * 255.0).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")), expected)
    # The reported PSNR is that render's (before 8-bit rounding; 30 steps from a
    # random init: a low PSNR, the plumbing is what is tested here).
    psnr = float(metrics.psnr(data.load_image(png), data.load_image(source)))
    assert psnr == pytest.approx(summary["psnr"], abs=0.2)


def test_refuses_to_overwrite(source, encoded, tmp_path):
    out, _, _ = encoded
    before = out.read_bytes()
    assert_one_line_error(
        run("experiments.codec", "encode", str(source), str(out), *TINY), "exists", "--overwrite"
    )
    assert out.read_bytes() == before
    png = tmp_path / "taken.png"
    png.write_bytes(b"keep me")
    assert_one_line_error(run("experiments.codec", "decode", str(out), str(png)), "exists")
    assert png.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda b: b[:40] + bytes([b[40] ^ 0x10]) + b[41:], "CRC mismatch"),
        (None, "no such file"),
    ],
)
def test_damaged_or_missing_file_gives_one_line(encoded, tmp_path, damage, fragment):
    out, _, _ = encoded
    bad = tmp_path / "bad.g2d"
    if damage is not None:
        bad.write_bytes(damage(out.read_bytes()))
    proc = run("experiments.codec", "decode", str(bad), str(tmp_path / "never.png"))
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "never.png").exists()


def test_compress_writes_results_and_resumes(source, tmp_path):
    # "Fitted" Gaussians in an experiments.fit work directory (random ones:
    # this tests the plumbing), compressed without fitting or QAT.
    fitted = tmp_path / "fitted"
    params = gaussians.init_random(jax.random.key(0), 80)
    checkpoint.save_params_npz(fitted / "crop" / "params.npz", params)
    workdir = tmp_path / "run"
    args = [
        "--config=configs/kodak_codec.py:smoke",
        f"--config.data.dir={source.parent}",
        "--config.data.downscale=1",
        "--config.codec.qat_steps=0",
        f"--fitted_dir={fitted}",
        f"--workdir={workdir}",
        "--baseline",
    ]
    proc = run("experiments.compress", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    (row,) = results["images"]
    for key in (
        "name",
        "height",
        "width",
        "num_gaussians",
        "bytes",
        "bpp",
        "psnr",
        "ms_ssim",
        "encode_seconds",
        "decode_seconds",
        "gaussianimage_bits",
        "bits_per_gaussian",
    ):
        assert key in row, key
    blob = (workdir / "crop" / "crop.g2d").read_bytes()
    assert (row["name"], row["num_gaussians"], row["bytes"]) == ("crop", 80, len(blob))
    assert row["bpp"] == pytest.approx(8 * len(blob) / (40 * 52))
    assert row["gaussianimage_bits"] == 8 * row["gaussianimage"]["bytes"] > 8 * len(blob)
    assert results["mean"]["bpp"] == pytest.approx(row["bpp"])

    again = run("experiments.compress", *args)
    assert again.returncode == 0 and "already done" in again.stdout
    assert (workdir / "crop" / "crop.g2d").read_bytes() == blob
    changed = run("experiments.compress", *args, "--config.codec.chol_bits=5")
    assert changed.returncode != 0 and "other settings" in changed.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--config.codec.no_such_key=1"], "no such key"),
        (["--config=configs/codec.py:bogus"], "unknown config argument 'bogus'"),
        (["--config.codec.chol_bits=99"], "chol_bits"),
    ],
)
def test_config_mistakes_give_one_line(source, tmp_path, args, fragment):
    proc = run("experiments.codec", "encode", str(source), str(tmp_path / "x.g2d"), *TINY, *args)
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "x.g2d").exists()

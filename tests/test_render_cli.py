"""``python -m experiments.render`` and ``experiments.codec decode``'s size flags, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from gauss2d import codec, gaussians
from gauss2d.io import checkpoint
from gauss2d.render import resolution

pytestmark = pytest.mark.slow

H, W = 40, 52  # the fitted frame


def run(module, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def expected_png(params, out_h, out_w, antialias) -> np.ndarray:
    image = resolution.render_at(params, H, W, out_h, out_w, antialias=antialias)
    return np.round(np.clip(np.asarray(image), 0.0, 1.0) * 255.0).astype(np.uint8)


@pytest.fixture(scope="module")
def params() -> gaussians.CholeskyParams:
    rng = np.random.default_rng(0)
    n = 80
    xy = rng.normal(0.0, 0.7, (n, 2))
    l11, l22 = rng.uniform(0.4, 4.0, (2, n))
    chol = np.stack([l11, 0.2 * rng.uniform(-1, 1, n) * l11, l22], -1) - np.asarray(gaussians.CHOLESKY_OFFSET)
    color = rng.uniform(0.0, 0.6, (n, 3))
    return gaussians.CholeskyParams(*(jnp.asarray(v, jnp.float32) for v in (xy, chol, color)))


@pytest.fixture(scope="module")
def fitted_dir(params, tmp_path_factory):
    """A folder as experiments.fit leaves it: params.npz and result.json with the fitted size."""
    folder = tmp_path_factory.mktemp("fit") / "img"
    checkpoint.save_params_npz(folder / "params.npz", params)
    (folder / "result.json").write_text(json.dumps({"height": H, "width": W}))
    return folder


@pytest.fixture(scope="module")
def g2d(params, tmp_path_factory):
    path = tmp_path_factory.mktemp("g2d") / "img.g2d"
    path.write_bytes(codec.encode(params, H, W))
    return path


def test_params_npz_at_half_size_is_anti_aliased_by_default(params, fitted_dir, tmp_path):
    out = tmp_path / "half.png"
    proc = run("experiments.render", str(fitted_dir / "params.npz"), str(out), "--scale=0.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "26x20" in proc.stdout and "anti-aliased" in proc.stdout
    got = png(out)
    assert got.shape == (20, 26, 3)
    np.testing.assert_allclose(got, expected_png(params, 20, 26, True), atol=1)
    # ... and that differs from the unfiltered render (the flag does something).
    assert np.abs(got.astype(int) - expected_png(params, 20, 26, False)).max() > 5


def test_params_npz_with_explicit_frame_height_only_and_noantialias(params, fitted_dir, tmp_path):
    out = tmp_path / "big.png"
    args = ["--fit_height=40", "--fit_width=52", "--height=160", "--noantialias"]
    # The frame flags take precedence over result.json; put the file elsewhere to prove it.
    lone = tmp_path / "lone" / "params.npz"
    lone.parent.mkdir()
    lone.write_bytes((fitted_dir / "params.npz").read_bytes())
    proc = run("experiments.render", str(lone), str(out), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = png(out)
    assert got.shape == (160, 208, 3)  # the width keeps the aspect ratio
    np.testing.assert_allclose(got, expected_png(params, 160, 208, False), atol=1)


def test_g2d_input_and_codec_decode_take_the_same_flags(g2d, tmp_path):
    decoded = codec.decode(g2d.read_bytes())
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    proc = run("experiments.render", str(g2d), str(a), "--width=13")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run("experiments.codec", "decode", str(g2d), str(b), "--width=13")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "13x10" in proc.stdout
    want = resolution.render_at(decoded.params, H, W, 10, 13)  # 1/4: anti-aliased by default
    want = np.round(np.clip(np.asarray(want), 0.0, 1.0) * 255.0).astype(np.uint8)
    np.testing.assert_allclose(png(a), want, atol=1)
    np.testing.assert_array_equal(png(a), png(b))


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--scale=0"], ["scale=0.0 must be a finite number > 0"]),
        (["--scale=2", "--height=3"], ["not both"]),
        (["--height=-4"], ["height=-4"]),
        (["--scale=1000"], ["too large", "limits"]),
        (["--scale=abc"], ["scale"]),
    ],
)
def test_bad_sizes_are_one_line_errors(g2d, tmp_path, args, fragments):
    out = tmp_path / "x.png"
    assert_one_line_error(run("experiments.render", str(g2d), str(out), *args), *fragments)
    assert not out.exists()


def test_bad_inputs_are_one_line_errors(fitted_dir, g2d, tmp_path):
    lone = tmp_path / "params.npz"
    lone.write_bytes((fitted_dir / "params.npz").read_bytes())
    assert_one_line_error(
        run("experiments.render", str(lone), str(tmp_path / "o.png")), "fitted size", "--fit_height"
    )
    assert_one_line_error(run("experiments.render", str(tmp_path / "nope.g2d"), "o.png"), "no such file")
    garbage = tmp_path / "garbage.g2d"
    garbage.write_bytes(b"not a gauss2d file at all")
    assert_one_line_error(run("experiments.render", str(garbage), str(tmp_path / "o.png")), "garbage.g2d")
    existing = tmp_path / "exists.png"
    existing.write_bytes(b"keep")
    assert_one_line_error(run("experiments.render", str(g2d), str(existing)), "--overwrite")
    assert existing.read_bytes() == b"keep"
    assert_one_line_error(
        run("experiments.codec", "decode", str(g2d), str(tmp_path / "d.png"), "--scale=-1"), "scale=-1"
    )

"""``experiments.codec encode --target_bpp / --target_psnr`` end to end, on a small image in seconds.

The Gaussians come from a params.npz (``--params``) and the ``fast`` preset
skips fine-tuning, so each command is an import, a few renders and a few
dozen encodes: what is tested is the command's promise about the file it
writes, measured from that file.
"""

from __future__ import annotations

import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO_ROOT

from gauss2d import codec, gaussians
from gauss2d.codec import decode
from gauss2d.compress import targets
from gauss2d.io import checkpoint
from gauss2d.io import images as data
from gauss2d.render import render_clamped

H, W = 40, 52


def _psnr(params, image) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(render_clamped(params, H, W)) - image) ** 2)))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 40 x 52 crop of the sample and 90 Gaussians coloured from it (a rough fit, made in no time)."""
    folder = tmp_path_factory.mktemp("targets")
    image = data.load_image(data.sample_image_path())[60:100, 200:252]
    data.save_image(folder / "crop.png", image)
    image = data.load_image(folder / "crop.png")  # as the command reads it (8-bit)
    rng = np.random.default_rng(0)
    means = rng.uniform(0.5, [W - 0.5, H - 0.5], (90, 2))
    xy = np.arctanh(2.0 * means / [W, H] - 1.0)
    chol = rng.uniform([1.0, -0.5, 1.0], [3.0, 0.5, 3.0], (90, 3))
    color = 0.25 * image[means[:, 1].astype(int), means[:, 0].astype(int)]
    params = gaussians.CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))
    checkpoint.save_params_npz(folder / "params.npz", params)
    return folder, params, image


def encode(folder, out, *flags):
    summary = folder / f"{out}.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.codec",
            "encode",
            str(folder / "crop.png"),
            str(folder / out),
            "--config=configs/codec.py:smoke",
            f"--params={folder / 'params.npz'}",
            "--preset=fast",
            f"--results={summary}",
            f"--compile_cache={folder / 'cache'}",
            *flags,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (folder / out).read_bytes(), json.loads(summary.read_text())


def test_target_bpp_writes_a_file_in_the_window(scene):
    folder, params, image = scene
    for target_bpp in (0.8, 1.6):
        blob, summary = encode(folder, f"bpp{target_bpp}.g2d", f"--target_bpp={target_bpp}")
        bpp = 8 * len(blob) / (H * W)  # from the file's bytes
        assert 0.9 * target_bpp <= bpp <= target_bpp, (target_bpp, bpp)
        assert summary["bpp"] == pytest.approx(bpp)
        decoded = decode(blob)
        assert (decoded.height, decoded.width) == (H, W)
        assert summary["psnr"] == pytest.approx(_psnr(decoded.params, image), abs=1e-3)


def test_target_psnr_writes_the_smallest_file_found_that_reaches_it(scene):
    folder, params, image = scene
    settings = codec.format_settings(2)  # configs/codec.py's v2 settings (CodecSettings defaults)
    state = codec.init_state(params, version=2, settings=settings)  # the fast preset's: no fine-tuning

    def encode_v2(st):
        return codec.encode(params, H, W, version=2, state=st, settings=settings)

    plain = decode(encode_v2(state)).params
    goal = round(_psnr(plain, image) - 1.0, 2)  # reachable, with files smaller than the plain one
    blob, summary = encode(folder, "psnr.g2d", f"--target_psnr={goal}")
    decoded_db = _psnr(decode(blob).params, image)
    assert decoded_db >= goal and summary["psnr"] == pytest.approx(decoded_db, abs=1e-3)
    assert len(blob) < len(encode_v2(state))  # it spent fewer bits than plain
    # No smaller file on a fine grid of step factors reaches the goal (the
    # command bisects the same factor, so it found the boundary).
    for s in 2.0 ** np.linspace(-3, 6, 37):
        other = encode_v2(targets.scaled_state(state, s))
        if len(other) < len(blob):
            assert _psnr(decode(other).params, image) < goal, s

"""Rendering decoded files (render.render_clamped): N padded to a bucket, one compiled count, same pixels."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from codec_helpers import encode_v2, v2_settings

from gauss2d import gaussians
from gauss2d.codec import decode
from gauss2d.codec.v2.state import init_state
from gauss2d.compress import decode_render
from gauss2d.render import capacity, display, pair_capacity, render, render_clamped

H, W = 48, 64


def _params(n, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.02, 0.98, (n, 2)) * [W, H]
    xy = np.arctanh(2.0 * means / [W, H] - 1.0)
    chol = rng.laplace([1.5, 0.0, 1.5], [0.5, 0.3, 0.5], (n, 3))
    color = rng.uniform(-0.1, 0.6, (n, 3))
    return gaussians.CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))


def _decoded(n, seed):
    """A decoded v2 file of ``_params(n, seed)`` (plain quantisation, given explicitly: no warning)."""
    params = _params(n, seed)
    return decode(encode_v2(params, H, W, init_state(params, v2_settings()))).params


@pytest.mark.parametrize("n", [1, 63, 64, 65, 80, 81, 9000, 2**20 + 1])
def test_bucket_holds_n_with_at_most_a_quarter_padding(n):
    b = capacity.num_gaussians_bucket(n)
    assert b >= n and b >= 64
    if n > 64:
        assert b <= 1.25 * n  # buckets 2^k x {1, 1.25, 1.5, 1.75}
    assert capacity.num_gaussians_bucket(b) == b  # a bucket is its own bucket


@pytest.mark.parametrize("n", [1, 70, 300])
def test_padded_render_is_the_same_image_bit_for_bit(n):
    params = _decoded(n, seed=n)
    padded = capacity.pad_to_bucket(params)
    assert gaussians.num_gaussians(padded) == capacity.num_gaussians_bucket(n)
    np.testing.assert_array_equal(np.asarray(padded.xy[:n]), np.asarray(params.xy))  # originals first
    # The padding adds no tile pairs: the same capacity bucket as the real
    # Gaussians, counted here in one compiled call and there op by op.
    cap = capacity.capacity_for(padded, H, W, backend="xla")
    assert cap == pair_capacity(
        gaussians.project(params, fitted_height=H, fitted_width=W), H, W, backend="xla"
    )
    image = np.asarray(render_clamped(params, H, W))
    unpadded = jax.jit(lambda p: jnp.clip(render(p, H, W, capacity=cap), 0.0, 1.0))(params)  # as a program
    np.testing.assert_array_equal(image, unpadded)
    assert image.shape == (H, W, 3) and np.isfinite(image).all() and image.max() > 0


def test_files_of_nearby_sizes_share_one_compiled_render():
    """Two decoded files of different N in one bucket: the render compiles once."""
    a, b = _decoded(100, seed=1), _decoded(110, seed=2)
    assert capacity.num_gaussians_bucket(100) == capacity.num_gaussians_bucket(110)
    render_clamped(a, H, W).block_until_ready()
    before = display._render_clamped._cache_size()
    cap_a = capacity.capacity_for(capacity.pad_to_bucket(a), H, W, backend="xla")
    cap_b = capacity.capacity_for(capacity.pad_to_bucket(b), H, W, backend="xla")
    render_clamped(b, H, W).block_until_ready()
    assert display._render_clamped._cache_size() == before + (cap_a != cap_b)


# JAX initialises its persistent cache once per process: turned on here, it
# would stay on (in a deleted folder) for every later test, and a cache write
# from an unrelated compile crashed the pytest process. So this runs in a child.
_CACHE_CHECK = """
import pathlib, sys
import jax
from gauss2d.compress import decode_render
tmp = pathlib.Path(sys.argv[1])
assert decode_render.enable_compile_cache("") is None  # off
assert decode_render.enable_compile_cache() == tmp / "env"  # from the environment variable
assert jax.config.jax_compilation_cache_dir == str(tmp / "env")
blocked = tmp / "file"
blocked.write_text("x")
# Not creatable: no cache, and no error (a cache never stops a decode).
assert decode_render.enable_compile_cache(blocked / "sub") is None
print("ok")
"""


def test_compile_cache_folder(tmp_path):
    env = {**os.environ, decode_render.CACHE_ENV: str(tmp_path / "env")}
    done = subprocess.run(
        [sys.executable, "-c", _CACHE_CHECK, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]

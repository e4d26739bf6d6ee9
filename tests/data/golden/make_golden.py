"""Writes golden v1/v2 files and their decoded parameters with the pre-redesign code (2239c09)."""

import pathlib
import sys
import warnings

import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.codec import alpha_streams, codec_v2, decode, encode
from gauss2d.gaussians import CholeskyParams

out = pathlib.Path(sys.argv[1])
H, W = 40, 56


def params(n=150, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.02, 0.98, (n, 2)) * [W, H]
    xy = np.arctanh(2.0 * means / [W, H] - 1.0)
    chol = rng.laplace([0.8, 0.0, 0.8], [0.3, 0.15, 0.3], (n, 3))
    pal = rng.uniform(-0.2, 1.0, (6, 3))
    color = pal[rng.integers(0, 6, n)] + rng.normal(0, 0.05, (n, 3))
    return CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))


warnings.simplefilter("ignore")
p = params()
files = {
    "v1_entropy": encode(p, H, W, mode="entropy"),
    "v1_gaussianimage": encode(p, H, W, mode="gaussianimage"),
    "v2_default": codec_v2.encode_v2(p, H, W),
    "v2_rgb_laplace": codec_v2.encode_v2(
        p, H, W, settings=codec_v2.V2Settings(color_space="rgb", model="laplace", predict="on")
    ),
}
pa = gaussians.with_alpha(
    p,
    jnp.asarray(np.random.default_rng(1).uniform(-2, 2, (150, 1)), jnp.float32),
    jnp.asarray(np.random.default_rng(2).normal(size=(150, 1)), jnp.float32),
)

files["v2_alpha"] = alpha_streams.encode_alpha_v2(pa, H, W)
for name, data in files.items():
    (out / f"{name}.g2d").write_bytes(data)
    d = decode(data)
    np.savez(
        out / f"{name}.npz",
        height=d.height,
        width=d.width,
        **{k: np.asarray(v) for k, v in d.params._asdict().items()},
    )
    print(name, len(data), type(d.params).__name__)

"""Writes the golden v3 files and their decoded parameters (the v1/v2 ones are make_golden.py's).

    PYTHONPATH=. python tests/data/golden/make_golden_v3.py tests/data/golden

Same Gaussians as make_golden.py (seeds and formulas); v3 with
``CodecSettings()`` defaults, one layer and four layers: ``v3_default`` and
``v3_layers4`` were written before per-Gaussian position precision (so with
``position_refine=0``), ``v3_refine`` / ``v3_refine_layers4`` with it (today's defaults).
"""

import pathlib
import sys
import warnings

import jax.numpy as jnp
import numpy as np

from gauss2d.codec import decode, encode, format_settings
from gauss2d.gaussians import CholeskyParams

H, W = 40, 56


def params(n=150, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.02, 0.98, (n, 2)) * [W, H]
    xy = np.arctanh(2.0 * means / [W, H] - 1.0)
    chol = rng.laplace([0.8, 0.0, 0.8], [0.3, 0.15, 0.3], (n, 3))
    pal = rng.uniform(-0.2, 1.0, (6, 3))
    color = pal[rng.integers(0, 6, n)] + rng.normal(0, 0.05, (n, 3))
    return CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))


FILES = {
    "v3_default": {"position_refine": 0},
    "v3_layers4": {"layers": 4, "position_refine": 0},
    "v3_refine": {},
    "v3_refine_layers4": {"layers": 4},
}

if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1])
    warnings.simplefilter("ignore")
    p = params()
    for name, changes in FILES.items():
        if (out / f"{name}.g2d").exists():
            continue  # a golden file is written once: later encoders must reproduce it
        data = encode(p, H, W, version=3, settings=format_settings(3, **changes))
        (out / f"{name}.g2d").write_bytes(data)
        d = decode(data)
        arrays = {k: np.asarray(v) for k, v in d.params._asdict().items()}
        np.savez(out / f"{name}.npz", height=d.height, width=d.width, **arrays)
        print(name, len(data), type(d.params).__name__)

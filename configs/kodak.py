"""GaussianImage's Kodak representation recipe (paper Table 1), on a GPU.

    python -m experiments.fit --config=configs/kodak.py --workdir=runs/kodak

70000 Gaussians, 50000 Adan steps at lr 1e-3 halved every 20000 steps, MSE
on the clamped render. The images are looked for in $GAUSS2D_KODAK_DIR,
data/kodak, then ../shared/data/kodak; or pass --config.data.dir=DIR.
``--config=configs/kodak.py:smoke`` fits two images, downscaled 4x, briefly
(a CPU check that the recipe runs, not its numbers).
"""

from __future__ import annotations

import os

from configs import base


def default_kodak_dir() -> str:
    """The first Kodak folder that exists, else data/kodak (the error names it)."""
    candidates = [os.environ.get("GAUSS2D_KODAK_DIR", ""), "data/kodak", "../shared/data/kodak"]
    return next((c for c in candidates if c and os.path.isdir(c)), "data/kodak")


def get_config(arg: str = ""):
    """The paper's recipe; ``:smoke`` for a CPU check."""
    config = base.get_base_config()
    config.data.dir = default_kodak_dir()
    if arg == "smoke":
        config.data.limit = 2
        config.data.downscale = 4
        config.model.num_points = 1000
        config.optim.iterations = 100
        config.optim.lr = 1e-2
        config.log_every = 50
        config.fps_repeats = 5
    elif arg:
        raise ValueError(f"unknown config argument {arg!r}; expected '' or 'smoke'")
    return base.finalize(config)

"""GaussianImage's Kodak representation recipe (paper Table 1), on a GPU.

    python -m experiments.fit --config=configs/kodak.py --workdir=runs/kodak

70000 Gaussians, 50000 Adan steps at lr 1e-3 halved every 20000 steps, MSE
on the clamped render. The images are looked for in $GAUSS2D_KODAK_DIR,
data/kodak, then ../shared/data/kodak; or pass --config.data.dir=DIR.
``--config=configs/kodak.py:smoke`` fits two images, downscaled 4x, briefly
(a CPU check that the recipe runs, not its numbers), in one batch.
Several GPUs or hosts: see docs/batch.md.
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
    # 24 images = 3 full batches of 8 (the 6 portrait ones are fitted
    # transposed, so all 24 share one 512x768 shape). preflight.check_memory
    # estimates ~1.1 GB per image at the start of this recipe (262144 pair
    # slots), more as the Gaussians grow: 8 stay well inside an H200's 141 GB
    # (and a 40 GB card) with room for that growth. Whether 24 in one batch
    # is faster on a given GPU is what benchmarks/batch_throughput.py
    # measures; if so, --config.batch_size=24.
    config.batch_size = 8
    if arg == "smoke":
        smoke(config, limit=2, downscale=4)
    elif arg:
        raise ValueError(f"unknown config argument {arg!r}; expected '' or 'smoke'")
    return base.finalize(config)


def smoke(config, *, limit: int, downscale: int) -> None:
    """Shrinks a paper recipe, in place, to a CPU check that it runs (not of its numbers).

    Shared by the paper's Kodak and DIV2K recipes (configs/div2k.py): ``limit``
    images downscaled ``downscale`` x, 1000 Gaussians, 100 steps at a rate
    raised to 1e-2 so that so few steps still move.
    """
    config.data.limit = limit
    config.data.downscale = downscale
    config.model.num_points = 1000
    config.optim.iterations = 100
    config.optim.lr = 1e-2
    config.log_every = 50
    config.fps_repeats = 5

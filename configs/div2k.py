"""GaussianImage's DIV2K recipe: the x2 bicubic low-resolution validation set.

    python -m experiments.fit --config=configs/div2k.py \
        --config.data.dir=/path/to/DIV2K_valid_LR_bicubic/X2 --workdir=runs/div2k

Images 0801x2 .. 0900x2 (about 1020x678); same optimiser as Kodak.
``:smoke`` fits one image downscaled 8x for a CPU check.
"""

from __future__ import annotations

from configs import base, kodak


def get_config(arg: str = ""):
    """The paper's DIV2K recipe; ``:smoke`` for a CPU check."""
    config = base.get_base_config()
    config.data.dir = "data/DIV2K_valid_LR_bicubic/X2"
    if arg == "smoke":
        kodak.smoke(config, limit=1, downscale=8)
    elif arg:
        raise ValueError(f"unknown config argument {arg!r}; expected '' or 'smoke'")
    return base.finalize(config)

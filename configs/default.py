"""The built-in sample on a laptop CPU, in under 3 minutes.

    python -m experiments.fit

(the same as ``--config=configs/default.py``). configs/kodak_fast.py's
recipe at the sample's scale: content-aware initialisation (gauss2d/init/content.py),
per-group Adan rates and a cosine decay, 300 steps (the paper's random init
and single rate 1e-3 need thousands). The sample is kodim23 at half size, so
the means' rate is 2x kodak_fast's full-size 1e-3 (raw means are
tanh-squashed onto the image); covariance and colour rates are kodak_fast's.
On the sample in 300 steps (benchmarks/RESULTS.md, "default_fit"):
means / cov / colour 2e-3 / 5e-2 / 2e-2: 38.5 dB; one rate 1e-2: 36.8 dB;
one rate 1e-3: 33.2 dB.
"""

from __future__ import annotations

from configs import base, kodak_fast


def get_config(arg: str = ""):
    """The sample recipe; ``:smoke`` shrinks it to seconds (tests)."""
    config = base.get_base_config()
    config.model.num_points = 4000
    config.model.init = "content"  # covers the image from step 0
    config.optim.lr = kodak_fast.LR_COV  # the base rate: --config.optim.lr scales every group's
    base.rates_following_lr(
        config,
        lr_means=2 * kodak_fast.LR_MEANS_AT_SMOKE_SCALE / 4,  # half size: 2x full size's
        lr_cov=kodak_fast.LR_COV,
        lr_color=kodak_fast.LR_COLOR,
    )
    config.optim.schedule = "cosine"  # to lr * decay_rate at the last step
    config.optim.decay_rate = 0.1
    config.optim.iterations = 300
    config.fps_repeats = 20  # each CPU render is ~0.1 s here
    config.checkpoint_every = 100
    if arg == "smoke":
        config.model.num_points = 300
        config.optim.iterations = 60
        config.log_every = 20
        config.fps_repeats = 5
    elif arg:
        raise ValueError(f"unknown config argument {arg!r}; expected '' or 'smoke'")
    return base.finalize(config)

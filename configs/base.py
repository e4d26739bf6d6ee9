"""Base config: every key a user can tune, with the paper's values.

Not run directly; dataset configs start from ``get_base_config()``.
Override any key on the command line: ``--config.optim.lr=1e-2``.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def get_base_config() -> ml_collections.ConfigDict:
    """All keys, unlocked so that dataset configs can change values."""
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.dir = ""  # folder of images; "" fits the built-in sample
    config.data.downscale = 1  # integer box-filter downscale before fitting (smoke runs)
    config.data.limit = 0  # fit at most this many images of data.dir; 0 = all
    # SVG inputs (docs/svg.md): the frame's longer side in px (0: the SVG's own size), and k,
    # the target's grid per frame pixel: the Gaussians are fitted against the drawing
    # rasterised k x finer (in that k x frame), so they keep edges sharper than a pixel: 4
    # renders the shipped set at 4x +6.2 dB over k = 1, at 1x -9.2 dB (RESULTS.md, svg_quality).
    config.data.svg_size = 0
    config.data.svg_supersample = 4

    config.model = ml_collections.ConfigDict()
    config.model.num_points = 70000  # paper's Kodak table (GaussianImage Table 1)
    config.model.parameterization = "cholesky"  # or "rs"
    # "sum": I = sum_n c_n w_n (GaussianImage; DESIGN.md section 2). "alpha": 3DGS-style
    # front-to-back compositing with a trainable opacity and depth per Gaussian (section 2b,
    # docs/alpha.md); alpha_init_opacity is GaussianImage's 3DGS model's 0.1.
    config.model.blend = "sum"
    config.model.alpha_init_opacity = 0.1
    config.model.init = (
        "random"  # the paper's initialisation; "content": gauss2d/init/content.py, docs/init.md
    )
    # "content" init: share of means drawn by image-gradient magnitude (the rest on a
    # jittered grid; Image-GS: 0.7 with uniform draws), sigma as a multiple of the local
    # mean spacing, least-squares colour steps against the first render.
    config.model.init_gradient_fraction = 0.7
    config.model.init_size_factor = 0.4
    config.model.init_color_iterations = 10
    # Error-guided allocation (gauss2d/train/densify.py): start with initial_fraction of
    # num_points, add the rest in `rounds` rounds every `every` steps where the error
    # is largest; recycle Gaussians contributing < recycle_below pixels (0 = never).
    config.model.densify = False
    config.model.densify_rounds = 3
    config.model.densify_initial_fraction = 0.5
    config.model.densify_every = 500
    config.model.densify_recycle_below = 0.0

    config.render = ml_collections.ConfigDict()
    config.render.backend = "xla"  # "xla" (any device), "pallas" (GPU kernel), "reference" (dense, slow)

    # Loss term weights on the clamped render; the paper trains with MSE alone.
    config.loss = ml_collections.ConfigDict()
    config.loss.l2 = 1.0
    config.loss.l1 = 0.0
    config.loss.ssim = 0.0

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adan"  # or "adam"
    config.optim.lr = 1e-3
    # Per-group learning rates; unset = optim.lr. Configs set them with
    # rates_following_lr, so that --config.optim.lr scales them too.
    config.optim.lr_means = config_dict.placeholder(float)
    config.optim.lr_cov = config_dict.placeholder(float)
    config.optim.lr_color = config_dict.placeholder(float)
    config.optim.b1 = 0.98  # Adan betas from the paper (Adam uses b1 and b3)
    config.optim.b2 = 0.92
    config.optim.b3 = 0.99
    config.optim.eps = 1e-8
    config.optim.schedule = "step"  # StepLR: lr * decay_rate every decay_steps
    config.optim.decay_steps = 20000
    config.optim.decay_rate = 0.5
    config.optim.iterations = 50000
    config.optim.clip_norm = 0.0  # 0 = no gradient clipping (the paper has none)

    # Images fitted at once (vmap; DESIGN.md section 4, docs/batch.md), per
    # process: rounded up to a multiple of the local device count, so several
    # devices always get an equal share. 1 on one device = one image at a time.
    config.batch_size = 1

    config.log_every = 100  # steps per jitted chunk and progress line
    config.checkpoint_every = 2000  # steps between checkpoints (rounded up to a chunk)
    config.fps_repeats = 100  # renders timed for render_fps (the paper times 100)
    # Refuse images whose estimated fitting memory exceeds this (GiB).
    config.memory_limit_gb = 16.0
    return config


def rates_following_lr(config: ml_collections.ConfigDict, **rates: float) -> None:
    """Sets per-group rates (``lr_means=2e-3, ...``) that follow ``optim.lr``.

    Each is stored as a reference, ``optim.lr / lr_now * rate``: exactly
    ``rate`` at the config's own ``optim.lr`` (lr_now), and
    ``--config.optim.lr=X`` scales every such group rate by X / lr_now, so the
    one-rate knob keeps working in configs that tune the groups (it did
    nothing there before). Overriding a group's own key fixes that group.
    """
    lr_now = config.optim.lr
    for key, rate in rates.items():
        setattr(config.optim, key, config.optim.get_ref("lr") / lr_now * rate)


def finalize(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Locks the key set, so a misspelt override is an error, not a new key."""
    config.lock()
    return config

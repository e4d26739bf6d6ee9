"""Compress the built-in sample on a laptop CPU (fit, fine-tune, encode).

    python -m experiments.codec encode gauss2d/assets/kodim23_384x256.png /tmp/kodim23.g2d
    python -m experiments.codec decode /tmp/kodim23.g2d /tmp/kodim23_decoded.png

The fit is ``configs/default.py``'s recipe (content-aware init, per-group
rates with a cosine decay) with 2000 Gaussians for 1000 steps, then ``codec.qat_steps``
steps of quantisation-aware fine-tuning.
``:smoke`` shrinks both to seconds (tests). ``codec_section()`` holds every
codec key with the paper's quantisers; ``configs/kodak_codec.py`` shares it.
"""

from __future__ import annotations

import ml_collections

from configs import default


def codec_section() -> ml_collections.ConfigDict:
    """The ``codec`` keys: quantisers (GaussianImage's), file mode and fine-tuning."""
    c = ml_collections.ConfigDict()
    # "entropy": grid positions coded as a set + adaptive entropy coding of
    # the indices; "gaussianimage": the paper's fixed-length layout (FP16 xy).
    c.mode = "entropy"
    c.chol_bits = 6  # LSQ+ bits per Cholesky channel (paper: 6)
    c.rvq_stages = 2  # residual VQ stages for colours (paper: 2)
    c.codebook_size = 8  # codewords per stage (paper: 8)
    # Entropy-mode position grid (px, a power of two): 1/8 px costs 12-14 bits
    # per Gaussian at Kodak densities (benchmarks/RESULTS.md, "codec"); its
    # error (<= 1/16 px) is about FP16's for Kodak-sized images.
    c.position_step = 0.125
    c.codebook_dtype = "float16"  # codebooks in the header: float16 halves the side information
    c.kmeans_iters = 20  # Lloyd iterations of the codebook initialisation
    # Quantisation-aware fine-tuning: the fit's optimiser (optim.name, betas),
    # restarted at qat_lr, scheduled by qat_schedule over qat_steps (cosine:
    # down to qat_lr * optim.decay_rate).
    c.qat_steps = 500
    # On the sample (this config's fit, 36.24 dB; quantised 21.62 dB) 300 QAT
    # steps decode at 25.56 / 26.83 / 29.35 / 29.53 / 29.57 dB with qat_lr
    # 3e-4 / 1e-3 / 5e-3 / 1e-2 / 2e-2: a plateau from 5e-3 on.
    c.qat_lr = 1e-2
    c.qat_schedule = "cosine"  # "step" (paper: StepLR), "cosine" or "constant"
    c.lsq_lr = 1e-4  # Adam on the LSQ scale / offset (~0.05 / ~-0.5 px at init)
    c.commit_weight = 1.0  # VQ commitment loss weight (paper: 1)
    c.ema_decay = 0.8  # codebook EMA decay (paper: 0.8)
    # Format version 2 (docs/codec.md): scalar colours in colour_space, every
    # attribute under a stored Laplace or histogram model, neighbour
    # prediction where it pays, and rate-aware fine-tuning (D + lmbda R)
    # with pruning in place of the QAT above. 1: v1's quantisers and QAT.
    c.version = 2
    c.color_space = "ycbcr"  # "ycbcr" or "rgb"
    # Covariance quantiser space: "cholesky" (raw factors) or "log" (log of the
    # diagonal, shear relative to it: gauss2d/codec/cov_space.py).
    c.cov_space = "log"
    # Colour steps x 2^(-octaves of the Gaussian's area / 2): finer for the
    # large Gaussians, whose colour errors cover more pixels.
    c.color_by_size = True
    c.chol_levels = 64  # initial Cholesky step: per-channel range / (levels - 1)
    c.color_step = 1.0 / 64  # initial colour step (the steps are then learned)
    c.predict = "auto"  # neighbour prediction per channel: "auto", "on", "off"
    c.entropy_model = "auto"  # per stream: "auto" (smaller), "laplace", "categorical"
    # lmbda: MSE per bit-per-pixel; the loss is MSE + lmbda * bpp (estimated).
    c.lmbda = 0.01
    c.quant_lr = 1e-2  # Adam on the log steps and offsets of the v2 quantisers
    c.prune_every = 50  # steps between pruning rounds (0: no pruning)
    c.prune_fraction = 0.1  # at most this share of the live Gaussians per round
    # After fine-tuning, scale the colour then the Cholesky steps by 2^(k/2),
    # k in [-4, 4], keeping what minimises MSE + lmbda * bpp of the real file.
    c.step_search = True
    # Which channel groups the step search scales, in order (compress/targets.py
    # SEARCH_GROUPS), and the position grids (px) it tries after them.
    c.search_groups = "color,chol"
    c.search_position_steps = (0.0625, 0.25)
    return c


def with_codec(
    config: ml_collections.ConfigDict, codec: ml_collections.ConfigDict
) -> ml_collections.ConfigDict:
    """Adds the codec section to a finalised (locked) config; returns it locked."""
    with config.unlocked():
        config.codec = codec
    config.lock()
    return config


def get_config(arg: str = ""):
    """The sample recipe; ``:smoke`` shrinks it to seconds (tests)."""
    config = default.get_config(arg)
    codec = codec_section()
    with config.unlocked():
        if arg == "smoke":
            codec.qat_steps = 40
        else:
            config.model.num_points = 2000
            config.optim.iterations = 1000
    return with_codec(config, codec)

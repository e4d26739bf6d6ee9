"""GaussianImage's Kodak compression recipe (paper section 3.3), on a GPU.

    python -m experiments.compress --config=configs/kodak_codec.py --workdir=runs/kodak_codec

The fit is configs/kodak.py's (50000 Adan steps, lr 1e-3 halved every 20000)
with ``model.num_points`` Gaussians, then 50000 steps of quantisation-aware
fine-tuning with the same optimiser and schedule (the paper's QAT), with
6-bit LSQ+ Cholesky and 2 x 8 residual-VQ colours. The paper's rate points
are 800 / 1000 / 3000 / 5000 / 7000 / 9000 Gaussians: sweep them with
``--config.model.num_points=N --workdir=runs/kodak_codec_N``. To compress
fits made by experiments.fit, add ``--fitted_dir=runs/kodak``.
``:smoke`` compresses two images downscaled 4x with short runs (a CPU check
that the recipe runs, not its numbers).
"""

from __future__ import annotations

from configs import codec, kodak


def get_config(arg: str = ""):
    """The paper's recipe at 5000 Gaussians (~0.7 bpp for GaussianImage); ``:smoke`` for a CPU check."""
    config = kodak.get_config(arg)
    section = codec.codec_section()
    if arg == "smoke":
        section.qat_steps = 100  # configs/codec.py's CPU fine-tuning, briefly
    else:
        section.qat_steps = 50000  # paper: as many steps as the fit
        section.qat_lr = 1e-3  # paper: the same optimiser, restarted
        section.qat_schedule = "step"  # StepLR, optim.decay_steps / optim.decay_rate
        with config.unlocked():
            config.model.num_points = 5000
    return codec.with_codec(config, section)

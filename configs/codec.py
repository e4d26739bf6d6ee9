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

from configs import base, default
from gauss2d import settings


def codec_section() -> ml_collections.ConfigDict:
    """The ``codec`` keys with their defaults (gauss2d/settings.py ``CodecSettings``: what each means)."""
    return base.section(settings.CodecSettings())


def with_codec(
    config: ml_collections.ConfigDict, codec: ml_collections.ConfigDict
) -> ml_collections.ConfigDict:
    """Adds the codec section to a finalised (locked) config; returns it locked."""
    with config.unlocked():
        config.codec = codec
    config.lock()
    return config


def get_settings(arg: str = "") -> settings.Settings:
    """``get_config(arg)`` resolved: what ``compress.compress_params`` and notebooks start from."""
    return settings.resolve(get_config(arg))


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

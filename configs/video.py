"""Encode a sequence as a ``.g2v`` file: the still codec's recipe for the I-frames, plus the video keys.

    python -m experiments.video encode pan /tmp/pan.g2v                        # a built-in sequence
    python -m experiments.video encode pan /tmp/pan.g2v --config=configs/video.py:smoke
    python -m experiments.video encode frames/ out.g2v --config.video.gop=8 --config.video.p_lmbda=0.002
    python -m experiments.video decode /tmp/pan.g2v /tmp/pan_frames --video=/tmp/pan.mp4

The I-frames take configs/codec.py's model, optim and codec sections at the
video benchmark's scale (benchmarks/video_rd.py: 800 Gaussians, 300 fit
steps, 100 rate-aware steps, no step search); ``video`` holds every other
knob (gauss2d/settings.py ``VideoSettings``: what each means). ``:smoke``
shrinks everything to well under two minutes on a 2-core CPU (tests).
"""

from __future__ import annotations

from configs import base
from configs import codec as codec_config
from gauss2d import settings


def get_settings(arg: str = "") -> settings.Settings:
    """``get_config(arg)`` resolved: what ``video.encoder.encode_video`` and the notebook start from."""
    return settings.resolve(get_config(arg))


def get_config(arg: str = ""):
    """The smoke-scale video recipe (module docstring); ``:smoke`` for tests."""
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown config argument {arg!r}; expected '' or 'smoke'")
    config = codec_config.get_config("")
    video = base.section(settings.VideoSettings())
    with config.unlocked():
        config.model.num_points = 800
        config.optim.iterations = 300
        config.codec.qat_steps = 100
        config.codec.step_search = False
        config.log_every = 50
        if arg == "smoke":
            config.model.num_points = 60
            config.optim.iterations = 40
            config.codec.qat_steps = 10
            config.log_every = 10
            video.frames, video.height, video.width, video.gop = 4, 32, 48, 2
            video.p_iterations, video.p_motion_warmup, video.p_prune_every = 10, 3, 5
        config.video = video
    config.lock()
    return config

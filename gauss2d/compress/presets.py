"""Encode presets: trade encode time for size (``experiments.codec encode --preset=``).

A preset scales the fine-tuning (``codec.qat_steps``) and turns the step
search (``codec.step_search``) on or off; the fit (``model.num_points``,
``optim.iterations``) is the caller's choice in every preset.
"""

from __future__ import annotations

import dataclasses

from gauss2d.errors import Gauss2dError
from gauss2d.settings import Settings

# preset -> (fine-tuning steps as a multiple of codec.qat_steps, codec.step_search).
PRESET_STEPS = {"fast": (0.0, False), "default": (1.0, True), "best": (3.0, True)}
PRESETS = tuple(PRESET_STEPS)


def apply_preset(settings: Settings, preset: str | None) -> Settings:
    """``settings`` with a preset's fine-tuning settings (None: unchanged).

    Raises:
      Gauss2dError: an unknown preset, or settings without a codec section.
    """
    if preset is None:
        return settings
    if preset not in PRESET_STEPS:
        raise Gauss2dError(f"preset {preset!r} is unknown: expected one of {list(PRESETS)}")
    if settings.codec is None:
        raise Gauss2dError("a preset needs a codec section in the config")
    tune_x, search = PRESET_STEPS[preset]
    codec = dataclasses.replace(
        settings.codec, qat_steps=round(settings.codec.qat_steps * tune_x), step_search=search
    )
    return settings.replace(codec=codec)

"""Encode presets: the whole encode of an image, fit included, at a time budget (``--preset=``).

A preset sets the fit (``model.num_points`` from the image's pixel count,
``optim.iterations``), the rate-aware fine-tuning (``codec.qat_steps``) and
the RD step search (``codec.step_search``). Keys the user set explicitly
(``--config.KEY=...``) win over the preset's. With fitted Gaussians given
(``--params``) only the fine-tuning part applies.

The number of Gaussians scales with the pixels (one per ``pixels_per_gaussian``):
the fit's cost per step and the bits a photo needs both grow with its area,
so a preset keeps its time and its rate per pixel roughly fixed across
sizes. The budgets are issue 23's, for a 768x512 image on a 2-core CPU,
whole command (start-up, compile, fit, fine-tuning, step search, encode):
``fast`` <= 20 s, ``default`` <= 120 s, ``best`` as long as it needs. The
seconds each preset took there are ``SECONDS_768x512`` (measured:
benchmarks/codec_presets.py, benchmarks/RESULTS.md "codec presets at
768x512"); the progress line scales them by the image's pixels.
"""

from __future__ import annotations

import dataclasses

from gauss2d.errors import Gauss2dError
from gauss2d.settings import Settings

KODAK_PIXELS = 768 * 512


@dataclasses.dataclass(frozen=True)
class Preset:
    pixels_per_gaussian: float  # model.num_points = pixels / this
    fit_steps: int  # optim.iterations
    qat_steps: int  # codec.qat_steps (0: no fine-tuning)
    step_search: bool  # codec.step_search
    seconds_768x512: float  # measured whole-command seconds at 768x512 on the 2-core CPU


PRESET_TABLE = {
    "fast": Preset(100.0, 50, 0, False, 12.0),
    "default": Preset(100.0, 400, 200, True, 85.0),
    "best": Preset(50.0, 2000, 1000, True, 1500.0),
}
PRESETS = tuple(PRESET_TABLE)


def _get(name: str) -> Preset:
    if name not in PRESET_TABLE:
        raise Gauss2dError(f"preset {name!r} is unknown: expected one of {list(PRESETS)}")
    return PRESET_TABLE[name]


def apply_preset(
    settings: Settings,
    preset: str | None,
    pixels: int | None = None,
    explicit: frozenset[str] = frozenset(),
) -> Settings:
    """``settings`` with a preset's values (None: unchanged).

    Args:
      settings: the run's settings.
      preset: a name in ``PRESETS`` or None.
      pixels: the fitted image's pixel count; None (Gaussians given, no fit):
        the fit's keys are left alone.
      explicit: dotted keys the user set (``cli.overridden_keys``); kept.

    Raises:
      Gauss2dError: an unknown preset, or settings without a codec section.
    """
    if preset is None:
        return settings
    p = _get(preset)
    if settings.codec is None:
        raise Gauss2dError("a preset needs a codec section in the config")
    changes = {"codec.qat_steps": p.qat_steps, "codec.step_search": p.step_search}
    if pixels is not None:
        changes["model.num_points"] = max(1, round(pixels / p.pixels_per_gaussian))
        changes["optim.iterations"] = p.fit_steps
    by_section: dict[str, dict] = {}
    for key, value in changes.items():
        if key not in explicit:
            section, field = key.split(".")
            by_section.setdefault(section, {})[field] = value
    return settings.replace(
        **{s: dataclasses.replace(getattr(settings, s), **kv) for s, kv in by_section.items()}
    )


def describe(preset: str, settings: Settings, pixels: int | None) -> str:
    """The preset's first progress line: what it runs and about how long it takes here."""
    p = _get(preset)
    work = []
    if pixels is not None:
        work.append(f"fit {settings.model.num_points} Gaussians x {settings.optim.iterations} steps")
    c = settings.codec
    work.append(f"{c.qat_steps} rate-aware fine-tuning steps" if c.qat_steps else "no fine-tuning")
    work.append("the RD step search" if c.step_search else "no step search")
    scale = (pixels or KODAK_PIXELS) / KODAK_PIXELS
    seconds = p.seconds_768x512 * scale
    expect = f"~{seconds:.0f} s" if seconds < 120 else f"~{seconds / 60:.0f} min"
    slow = "; this preset takes long on a CPU" if seconds > 300 else ""
    return f"preset {preset}: {', '.join(work)} (expect {expect} on a 2-core CPU{slow})"

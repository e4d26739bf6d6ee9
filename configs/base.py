"""Base config: every key a user can tune, with its default from ``gauss2d/settings.py``.

Not run directly; dataset configs start from ``get_base_config()``.
Override any key on the command line: ``--config.optim.lr=1e-2``. The
defaults (the paper's values) and what each key means live in one place,
the dataclasses of ``gauss2d/settings.py``; this file only turns them into
a ConfigDict, so a recipe states only what it changes.
"""

from __future__ import annotations

import dataclasses
import typing

import ml_collections
from ml_collections import config_dict

from gauss2d import settings


def section(values) -> ml_collections.ConfigDict:
    """A settings section (a frozen dataclass instance) as a ConfigDict.

    Optional fields that default to None become typed placeholders, so
    ``--config.optim.lr_means=2e-3`` type-checks instead of being refused.
    """
    hints = typing.get_type_hints(type(values))
    out = ml_collections.ConfigDict()
    for field in dataclasses.fields(values):
        value = getattr(values, field.name)
        if value is None:
            (kind,) = [a for a in typing.get_args(hints[field.name]) if a is not type(None)]
            value = config_dict.placeholder(kind)
        setattr(out, field.name, value)
    return out


def get_base_config() -> ml_collections.ConfigDict:
    """All keys but the codec and rd sections, unlocked so that dataset configs can change values."""
    defaults = settings.Settings()
    config = ml_collections.ConfigDict()
    for field in dataclasses.fields(defaults):
        value = getattr(defaults, field.name)
        if field.name in settings.SECTIONS:
            if value is not None:
                setattr(config, field.name, section(value))
        else:
            setattr(config, field.name, value)
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

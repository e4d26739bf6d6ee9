"""gauss2d.settings: configs resolve to frozen typed settings; defaults live in one place."""

import dataclasses
import importlib

import pytest

from configs import base
from gauss2d import settings

CONFIGS = [
    ("default", ""),
    ("default", "smoke"),
    ("kodak", ""),
    ("kodak_fast", "smoke"),
    ("div2k", ""),
    ("codec", ""),
    ("codec", "smoke"),
    ("kodak_codec", ""),
    ("rd_kodak", "cpu"),
    ("rd_kodak", "smoke"),
]


@pytest.mark.parametrize("name,arg", CONFIGS)
def test_every_shipped_config_resolves_to_its_values(name, arg):
    config = importlib.import_module(f"configs.{name}").get_config(arg)
    resolved = settings.resolve(config)
    assert resolved.model.num_points == config.model.num_points
    assert resolved.optim.lr_means == config.optim.lr_means  # a field reference, resolved
    assert (resolved.codec is None) == ("codec" not in config)
    if resolved.codec is not None:
        assert resolved.codec.lmbda == config.codec.lmbda
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.model.num_points = 1


def test_base_config_is_built_from_the_defaults():
    """The ConfigDict's values are the dataclasses' defaults: no second copy of any default."""
    resolved = settings.resolve(base.get_base_config())
    assert resolved == settings.Settings()


def test_lr_placeholder_overrides_type_check():
    config = base.get_base_config()
    config.optim.lr_means = 2e-3
    assert settings.resolve(config).optim.lr_means == 2e-3
    with pytest.raises(TypeError):
        config.optim.lr_cov = "fast"


@pytest.mark.parametrize(
    "values,message",
    [
        ({"model": {"num_points": "many"}}, "model.num_points='many' is invalid: expected int"),
        ({"model": {"densify": 1}}, "model.densify=1 is invalid: expected True or False"),
        ({"model": {"nump": 3}}, "unknown config key model.nump"),
        ({"epochs": 3}, "unknown config key epochs"),
        ({"rd": {"num_points": 5}}, "rd.num_points=5 is invalid: expected a tuple"),
        ({"rd": {"lmbda": (0.1, "x")}}, "rd.lmbda[1]='x' is invalid: expected float"),
    ],
)
def test_bad_values_name_the_key(values, message):
    with pytest.raises(settings.SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        settings.resolve(values)


def test_ints_become_floats_where_a_float_is_wanted():
    resolved = settings.resolve({"optim": {"lr": 1}, "codec": {"search_position_steps": [1, 0.5]}})
    assert resolved.optim.lr == 1.0 and isinstance(resolved.optim.lr, float)
    assert resolved.codec.search_position_steps == (1.0, 0.5)


def test_svg_supersample_default_matches_the_loader():
    from gauss2d.io import svg

    assert settings.DataSettings().svg_supersample == svg.DEFAULT_SUPERSAMPLE

"""configs/video.py loads with each argument it documents, every key typed and checked."""

from __future__ import annotations

import pytest

from configs import video as video_config
from gauss2d.settings import VideoSettings, resolve
from gauss2d.train import fit
from gauss2d.video import encoder


@pytest.mark.parametrize("arg", ["", "smoke"])
def test_config_loads_and_validates(arg):
    config = video_config.get_config(arg)
    settings = resolve(config)
    fit.validate_settings(settings)
    assert isinstance(settings.video, VideoSettings)
    assert encoder.check_video_settings(settings) is settings.video
    with pytest.raises(AttributeError):  # locked: a typo in an override is an error
        config.video.gopp = 3


def test_smoke_is_small_and_the_default_is_the_benchmarks_scale():
    smoke, full = (resolve(video_config.get_config(a)) for a in ("smoke", ""))
    assert smoke.video.frames * smoke.video.height * smoke.video.width <= 4 * 32 * 48
    assert smoke.model.num_points < full.model.num_points == 800
    assert full.video == VideoSettings()


def test_unknown_argument_is_an_error():
    with pytest.raises(ValueError, match="unknown config argument"):
        video_config.get_config("fast")


def test_bad_video_values_are_refused_before_any_fit():
    settings = resolve(video_config.get_config("smoke"))
    for change, match in [
        ({"gop": 0}, "gop"),
        ({"scene_cut_bytes": 0.0}, "scene_cut"),
        ({"step_cov": 0.0}, "steps"),
    ]:
        bad = settings.replace(video=settings.video.__class__(**{**settings.video.__dict__, **change}))
        with pytest.raises(ValueError, match=match):
            encoder.check_video_settings(bad)

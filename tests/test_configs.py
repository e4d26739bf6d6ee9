"""Every config file loads with each argument it documents; the recipes are what they claim."""

from __future__ import annotations

import importlib
import subprocess
import sys

import jax
import pytest
from conftest import REPO_ROOT

from gauss2d.gaussians import init_random
from gauss2d.settings import resolve
from gauss2d.train import fit, optim

ARGS = {
    "default": ("", "smoke"),
    "kodak": ("", "smoke"),
    "kodak_fast": ("", "smoke"),
    "div2k": ("", "smoke"),
    "codec": ("", "smoke"),
    "kodak_codec": ("", "smoke"),
    "rd_kodak": ("", "cpu", "cpu_heldout", "smoke"),
    "video": ("", "smoke"),
}


@pytest.mark.parametrize("name, arg", [(n, a) for n, args in ARGS.items() for a in args])
def test_config_loads_and_validates(name, arg):
    config = importlib.import_module(f"configs.{name}").get_config(arg)
    settings = resolve(config)  # every key known and of its field's type
    fit.validate_settings(settings)
    optim.make_optimizer(settings.optim, init_random(jax.random.key(0), 2))
    with pytest.raises(AttributeError):  # locked: a typo in an override is an error
        config.modle = 1


@pytest.mark.parametrize("name", sorted(ARGS))
def test_unknown_argument_is_an_error(name):
    with pytest.raises(ValueError, match="unknown config argument"):
        importlib.import_module(f"configs.{name}").get_config("fast")


def test_kodak_stays_the_papers_recipe_and_kodak_fast_takes_a_fifth_of_its_steps():
    paper = importlib.import_module("configs.kodak").get_config()
    fast = importlib.import_module("configs.kodak_fast").get_config()
    assert paper.model.init == "random" and paper.model.num_points == 70000
    assert (paper.optim.lr, paper.optim.schedule, paper.optim.iterations) == (1e-3, "step", 50000)
    assert fast.model.init == "content" and fast.model.num_points == paper.model.num_points
    assert fast.optim.iterations * 5 == paper.optim.iterations
    assert fast.data.dir == paper.data.dir


def test_rd_kodak_points_are_the_papers_and_cpu_keeps_gaussians_per_pixel():
    rd_kodak = importlib.import_module("configs.rd_kodak")
    full, cpu = rd_kodak.get_config(), rd_kodak.get_config("cpu")
    assert tuple(full.rd.num_points) == rd_kodak.PAPER_POINTS
    scale = cpu.data.downscale**2  # pixels per full-size pixel
    assert all(n * scale in rd_kodak.PAPER_POINTS for n in cpu.rd.num_points)


@pytest.mark.parametrize("name, arg", [(n, a) for n, args in sorted(ARGS.items()) for a in args])
def test_optim_lr_scales_the_group_rates_it_does_not_silently_do_nothing(name, arg):
    # Issue 15: every shipped config that tunes the groups set them as plain
    # values, so --config.optim.lr changed nothing. They follow lr now.
    config = importlib.import_module(f"configs.{name}").get_config(arg)
    before = optim.group_learning_rates(resolve(config).optim)
    lr = config.optim.lr
    config.optim.lr = lr / 10
    after = optim.group_learning_rates(resolve(config).optim)
    for group in optim.GROUPS:
        assert after[group] == pytest.approx(before[group] / 10, rel=1e-12), group
    # A group's own key still wins, and stays put when lr moves again.
    config.optim.lr_cov = 0.123
    config.optim.lr = lr
    assert optim.group_learning_rates(resolve(config).optim)["cov"] == 0.123
    assert optim.group_learning_rates(resolve(config).optim)["means"] == before["means"]


def test_optim_lr_override_reaches_the_group_rates_through_the_flag_parser():
    code = (
        "import sys; from absl import flags; from ml_collections import config_flags; "
        "c = config_flags.DEFINE_config_file('config', 'configs/default.py', lock_config=True); "
        "flags.FLAGS(sys.argv); o = c.value.optim; print(o.lr_means, o.lr_cov, o.lr_color)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--config.optim.lr=5e-3"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    means, cov, color = map(float, proc.stdout.split())
    assert (means, cov, color) == pytest.approx((2e-4, 5e-3, 2e-3), rel=1e-12)

"""benchmarks/init_quality.py: its configs differ only by init / allocation, and its table's arithmetic."""

import argparse

import numpy as np
import pytest

from benchmarks import init_quality
from gauss2d.settings import resolve
from gauss2d.train import optim


def _args(**overrides):
    defaults = dict(
        num_points=2000, rounds=3, every=250, initial_fraction=0.5, lr=1e-2, steps=2000, log_every=50
    )
    defaults.update(schedule="constant", decay_rate=0.01)
    defaults.update(overrides)
    return argparse.Namespace(**defaults)


def test_variants_share_everything_but_init_and_allocation():
    configs = {v: init_quality.make_config(_args(), v) for v in init_quality.VARIANTS}
    flat = {v: c.to_dict() for v, c in configs.items()}
    for variant, config in flat.items():
        init, alloc = init_quality.VARIANTS[variant]
        assert (config["model"]["init"], config["model"]["densify"]) == (init, alloc)
        for section in ("optim", "loss", "render"):
            assert config[section] == flat["random"][section], (variant, section)
    assert flat["random"]["optim"]["schedule"] == "constant"


def test_cosine_schedule_reaches_the_decay_rate():
    config = init_quality.make_config(_args(schedule="cosine", decay_rate=0.01, steps=100), "content")
    assert config.optim.schedule == "cosine" and config.optim.decay_rate == 0.01
    schedule = optim.make_schedule(resolve(config).optim, config.optim.lr)
    assert float(schedule(0)) == pytest.approx(1e-2)
    assert float(schedule(100)) == pytest.approx(1e-4)


def test_tail_gain_and_table():
    curve = np.linspace(10.0, 20.0, 101)  # 0.1 dB per step
    assert init_quality.tail_gain(curve) == pytest.approx(1.1)  # step 90 to step 101
    flat = np.concatenate([np.linspace(10.0, 20.0, 50), np.full(50, 20.0)])
    assert init_quality.tail_gain(flat) == 0.0
    table = init_quality.table({"img/random": {"psnr": list(curve), "seconds": 3.0}}, [50, 100])
    row = table.splitlines()[-1]
    assert row == f"| img | random | {curve[49]:.2f} | {curve[99]:.2f} | 20.00 | +1.10 | 3 |  |"
    # Runs that timed their initialiser (cold, warm) show it in the last column.
    timed = {"img/superpixel": {"psnr": list(curve), "seconds": 3.0, "init_seconds": [2.5, 0.25]}}
    assert init_quality.table(timed, [50]).splitlines()[-1].endswith("| 3 | 2.50 / 0.25 |")

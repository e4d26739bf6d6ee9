"""benchmarks/fast_recipe.py: the scaled configs and the 'reaches the paper's PSNR at' arithmetic."""

import numpy as np
import pytest

from benchmarks import fast_recipe
from configs import kodak, kodak_fast


@pytest.mark.parametrize("downscale", [1, 4])
def test_scaled_configs_keep_gaussians_per_pixel_and_means_pixel_rate(downscale):
    paper, fast = kodak.get_config(), kodak_fast.get_config()
    for recipe, full in (("paper", paper), ("paper+content", paper), ("fast", fast)):
        config = fast_recipe.make_config(recipe, downscale, None)
        assert config.model.num_points * downscale**2 == pytest.approx(70000, rel=1e-3)
        full_means_lr = full.optim.lr_means if full.optim.lr_means is not None else full.optim.lr
        assert config.optim.lr_means == pytest.approx(downscale * full_means_lr)
        assert config.optim.iterations == full.optim.iterations
        # Everything but the means' rate and the logging is the recipe's own.
        assert config.optim.lr == full.optim.lr and config.optim.schedule == full.optim.schedule
    assert fast_recipe.make_config("paper", 4, None).model.init == "random"
    assert fast_recipe.make_config("paper+content", 4, None).model.init == "content"
    assert fast_recipe.make_config("fast", 4, 123).optim.iterations == 123


def test_first_step_reaching_and_the_table():
    curve = np.asarray([10.0, 12.0, 11.0, 15.0, 16.0])
    assert fast_recipe.first_step_reaching(curve, 12.0) == 2
    assert fast_recipe.first_step_reaching(curve, 15.5) == 5
    assert fast_recipe.first_step_reaching(curve, 16.5) is None
    paper = {"psnr": list(np.linspace(10, 30, 50)), "seconds": 5.0}
    fast = {"psnr": [20.0] * 4 + [30.0] * 6, "seconds": 1.0}
    table = fast_recipe.summarise({"a/paper": paper, "a/fast": fast})
    row = table.splitlines()[-1]
    assert "| 30.00 (50) | 30.00 (10) | 5 | 1/10.0 |" in row
    slow = {"psnr": [20.0] * 10, "seconds": 1.0}
    assert "not reached" in fast_recipe.summarise({"a/paper": paper, "a/fast": slow})
    # Without the paper run there is nothing to reach: no verdict either way.
    alone = fast_recipe.summarise({"a/fast": fast}).splitlines()[-1]
    assert "not reached" not in alone and "| — | — |" in alone

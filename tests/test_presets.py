"""Encode presets: the whole encode at a time budget; the user's own keys win; one line per mistake."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from configs import codec as codec_config
from experiments import cli
from gauss2d.compress import presets
from gauss2d.errors import Gauss2dError


@pytest.fixture(scope="module")
def base():
    return codec_config.get_settings()


def test_presets_set_the_fit_from_the_pixels_and_the_fine_tuning(base):
    fast = presets.apply_preset(base, "fast", pixels=768 * 512)
    best = presets.apply_preset(base, "best", pixels=768 * 512)
    assert fast.model.num_points == round(768 * 512 / presets.PRESET_TABLE["fast"].pixels_per_gaussian)
    assert best.model.num_points > fast.model.num_points  # best spends more Gaussians too
    assert fast.optim.iterations < presets.apply_preset(base, "default", pixels=768 * 512).optim.iterations
    assert (fast.codec.qat_steps, fast.codec.step_search) == (0, False)
    assert best.codec.qat_steps > 0 and best.codec.step_search
    # a quarter of the pixels, a quarter of the Gaussians
    small = presets.apply_preset(base, "fast", pixels=384 * 256)
    assert small.model.num_points == round(fast.model.num_points / 4)


def test_explicit_keys_win_and_given_gaussians_keep_the_fit_keys(base):
    kept = presets.apply_preset(
        base, "fast", pixels=768 * 512, explicit=frozenset({"model.num_points", "codec.qat_steps"})
    )
    assert kept.model.num_points == base.model.num_points and kept.codec.qat_steps == base.codec.qat_steps
    assert kept.optim.iterations == presets.PRESET_TABLE["fast"].fit_steps
    no_fit = presets.apply_preset(base, "default", pixels=None)  # --params: nothing to fit
    assert no_fit.model == base.model and no_fit.optim == base.optim
    assert no_fit.codec.qat_steps == presets.PRESET_TABLE["default"].qat_steps
    assert presets.apply_preset(base, None, pixels=100) is base


def test_overridden_keys_read_both_flag_forms():
    argv = ["prog", "--config.model.num_points=5", "--config.optim.iterations", "7", "--preset=fast"]
    assert cli.overridden_keys(argv) == {"model.num_points", "optim.iterations"}


def test_unknown_preset_and_missing_codec_section(base):
    with pytest.raises(Gauss2dError, match="preset 'quick' is unknown"):
        presets.apply_preset(base, "quick", pixels=10)
    with pytest.raises(Gauss2dError, match="needs a codec section"):
        presets.apply_preset(base.replace(codec=None), "fast", pixels=10)


def test_the_progress_line_says_what_runs_and_that_best_takes_long(base):
    pixels = 768 * 512
    line = presets.describe("fast", presets.apply_preset(base, "fast", pixels), pixels)
    assert line.startswith("preset fast: fit ") and "no fine-tuning" in line and " s on a 2-core CPU" in line
    best = presets.describe("best", presets.apply_preset(base, "best", pixels), pixels)
    assert "takes long" in best and "min" in best
    assert "fit" not in presets.describe("default", presets.apply_preset(base, "default", None), None)


@pytest.mark.slow
def test_cli_prints_the_preset_line_and_keeps_the_users_keys(tmp_path):
    image = tmp_path / "small.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.uniform(0, 255, (24, 32, 3))).astype(np.uint8)).save(image)
    out = tmp_path / "small.g2d"
    proc = subprocess.run(
        [
            sys.executable, "-m", "experiments.codec", "encode", str(image), str(out), "--preset=fast",
            "--config=configs/codec.py:smoke", "--config.model.init=random", "--config.model.num_points=40",
        ],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    # 32 x 24 px: the preset's rule would fit 8 Gaussians; the user's 40 win, fast's 50 steps stay
    assert first.startswith("preset fast: fit 40 Gaussians x 50 steps, no fine-tuning"), first
    assert out.exists() and "40 Gaussians" in proc.stdout.splitlines()[-1]

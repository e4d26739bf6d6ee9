"""model.blend = "alpha": it trains, resumes, batch-fits, round-trips and is refused where unsupported."""

from __future__ import annotations

import jax
import numpy as np
import oracle
import pytest

from configs import default
from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.gaussians import ProjectedAlpha
from gauss2d.io import checkpoint
from gauss2d.io import images as data
from gauss2d.render import render, render_with_stats
from gauss2d.runner import dataset as runner
from gauss2d.settings import resolve
from gauss2d.train import batch as fit_batch
from gauss2d.train import fit

PARAM_TOL = dict(rtol=1e-4, atol=2e-5)  # as test_fit_batch: a vmapped step may round differently


def small_settings(**overrides):
    config = default.get_config("smoke")
    with config.unlocked():
        config.model.blend = "alpha"
        config.model.init = "random"
        config.model.num_points = 64
        config.optim.iterations = 30
        config.log_every = 10
        config.fps_repeats = 1
        for key, value in overrides.items():
            section, _, name = key.rpartition(".")
            (config[section] if section else config)[name] = value
    return resolve(config)


@pytest.fixture(scope="module")
def target():
    return data.downscale(data.load_image(data.sample_image_path()), 8)  # 32 x 48


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_alpha_fit_learns_opacity_and_leaves_depth_alone(target):
    settings = small_settings()
    result = fit.fit_image(target, settings, jax.random.key(0))
    start = fit.initial_params(settings, target, jax.random.key(0))
    assert isinstance(result.params, gaussians.CholeskyAlphaParams)
    assert int(result.state.step) == 30
    assert result.history["psnr"][-1] > result.history["psnr"][0] + 1.0
    assert not np.allclose(result.params.opacity, start.opacity)
    # The image is piecewise constant in depth: zero gradient, so Adan never moves it.
    np.testing.assert_array_equal(result.params.depth, start.depth)
    # The loop's render is the alpha model's: it matches the float64 oracle.
    proj, o, z = gaussians.project_alpha(
        result.params, fitted_height=target.shape[0], fitted_width=target.shape[1]
    )
    image, _ = render_with_stats(result.params, *target.shape[:2], backend="xla", capacity=result.capacity)
    assert oracle.rel_err(image, oracle.render_alpha(*proj, o, z, *target.shape[:2])) <= 1e-5


def test_alpha_fit_on_pallas_matches_the_xla_fit(target):
    # render.backend="pallas" trains the alpha model through the same engine
    # (interpret mode on CPU). Ten steps: float32 rounding differs between
    # the kernels (tests/test_alpha_pallas.py) and Adan carries it forward.
    settings = small_settings(**{"optim.iterations": 10})
    xla = fit.fit_image(target, settings, jax.random.key(3))
    pallas = fit.fit_image(
        target, small_settings(**{"optim.iterations": 10, "render.backend": "pallas"}), jax.random.key(3)
    )
    assert int(pallas.state.step) == 10
    np.testing.assert_allclose(pallas.history["psnr"], xla.history["psnr"], rtol=0, atol=1e-3)
    for x, y in zip(leaves(pallas.params), leaves(xla.params)):
        np.testing.assert_allclose(x, y, **PARAM_TOL)


def test_alpha_resume_matches_an_uninterrupted_run(target):
    settings = small_settings(**{"optim.iterations": 20})
    full = fit.fit_image(target, settings, jax.random.key(5))
    half = fit.fit_image(target, settings, jax.random.key(5), on_chunk=lambda s, i: "stop")
    assert int(half.state.step) == 10  # read before the resumed fit donates the state
    resumed = fit.fit_image(target, settings, jax.random.key(5), state=half.state)
    assert int(resumed.state.step) == 20
    assert all(np.array_equal(a, b) for a, b in zip(leaves(resumed.params), leaves(full.params)))


def test_alpha_batch_equals_separate_fits(target):
    settings = small_settings(**{"optim.iterations": 20})
    targets = np.stack([target, np.ascontiguousarray(target[::-1, ::-1])])
    keys = [jax.random.key(0), jax.random.key(1)]
    batched = fit_batch.fit_batch(targets, settings, keys)
    for b in range(2):
        alone = fit.fit_image(targets[b], settings, keys[b])
        for x, y in zip(leaves(batched[b].params), leaves(alone.params)):
            np.testing.assert_allclose(x, y, **PARAM_TOL)


@pytest.mark.parametrize("parameterization", ["cholesky", "rs"])
def test_alpha_params_npz_round_trip_and_transpose(tmp_path, parameterization):
    base = gaussians.init_random(jax.random.key(0), 20, parameterization)
    params = gaussians.init_alpha(base, jax.random.key(1), 0.3)
    checkpoint.save_params_npz(tmp_path / "p.npz", params)
    loaded = checkpoint.load_params_npz(tmp_path / "p.npz")
    assert type(loaded) is type(params)
    assert all(np.array_equal(a, b) for a, b in zip(leaves(loaded), leaves(params)))
    checkpoint.save_params_npz(tmp_path / "s.npz", base)  # sum files keep their old layout
    assert "blend" not in np.load(tmp_path / "s.npz").files
    # The transposed alpha model renders the transposed image.
    h, w = 12, 20
    up = gaussians.project_alpha(params, fitted_height=h, fitted_width=w)
    tr = gaussians.project_alpha(fit_batch.transpose_params(params), fitted_height=w, fitted_width=h)
    ref = oracle.render_alpha(*up[0], up[1], up[2], h, w)
    assert oracle.rel_err(render(ProjectedAlpha(*tr[0], tr[1], tr[2]), w, h), ref.transpose(1, 0, 2)) <= 1e-5


def test_alpha_dataset_writes_and_resumes(target, tmp_path, capsys):
    from PIL import Image  # noqa: PLC0415

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray((target * 255).astype(np.uint8)).save(folder / "a.png")
    settings = small_settings(**{"data.dir": str(folder), "checkpoint_every": 10, "optim.iterations": 20})
    workdir = tmp_path / "run"
    runner.fit_dataset(settings, workdir)
    params = checkpoint.load_params_npz(workdir / "a" / "params.npz")
    assert isinstance(params, gaussians.CholeskyAlphaParams)
    proj, o, z = gaussians.project_alpha(params, fitted_height=32, fitted_width=48)
    rendered = np.clip(np.asarray(render(ProjectedAlpha(*proj, o, z), 32, 48)), 0, 1)
    assert np.abs(rendered - data.load_image(workdir / "a" / "render.png")).max() <= 1.0 / 255 + 1e-4
    (workdir / "a" / "result.json").unlink()  # as if stopped after its last checkpoint
    capsys.readouterr()
    runner.fit_dataset(small_settings(**{"data.dir": str(folder), "optim.iterations": 30}), workdir)
    assert "resuming from step 20" in capsys.readouterr().out


def test_bad_alpha_configs_are_named(target):
    with pytest.raises(Gauss2dError, match="model.blend='over'"):
        fit.fit_image(target, small_settings(**{"model.blend": "over"}), jax.random.key(0))
    # Every built-in backend has an alpha kernel now (pallas: render/alpha_pallas.py); another is refused.
    with pytest.raises(Gauss2dError, match="render.backend='nope' has no alpha-compositing kernel.*'pallas'"):
        fit.fit_image(target, small_settings(**{"render.backend": "nope"}), jax.random.key(0))
    with pytest.raises(ValueError, match="alpha_init_opacity=1.5"):
        fit.fit_image(target, small_settings(**{"model.alpha_init_opacity": 1.5}), jax.random.key(0))

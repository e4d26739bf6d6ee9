"""gauss2d.train.own_loop and docs/own_loop.md's example (executed, at a smaller size)."""

from __future__ import annotations

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.io import images as data
from gauss2d.train import own_loop

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "own_loop.md"
SIZE_LINE = re.compile(r"^N, STEPS, DOWNSCALE = .*$", re.MULTILINE)


def doc_example() -> str:
    """The page's first python block: the runnable example."""
    return re.search(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL).group(1)


def test_the_documented_example_runs_and_matches_fit_image(capsys):
    code = doc_example()
    assert SIZE_LINE.search(code), "the example's size line moved: update this test"
    # The page's example at 1/8 of its size (the sample at 1/8, 300 Gaussians,
    # 40 steps in chunks of 20): the same code, seconds instead of minutes.
    small = SIZE_LINE.sub("N, STEPS, DOWNSCALE = 300, 40, 8", code)
    small = small.replace("STEPS\n", "STEPS\nconfig.log_every = 20\n", 1)
    scope: dict = {}
    exec(compile(small, str(DOC), "exec"), scope)  # noqa: S102 (our own documentation)
    result, reference = scope["result"], scope["reference"]
    assert len(result.history["step"]) == len(reference.history["step"]) == 40
    # The same initialisation, optimiser and loss through the same engine: the same fit.
    np.testing.assert_allclose(result.history["psnr"], reference.history["psnr"], rtol=1e-5)
    assert result.history["psnr"][-1] > result.history["psnr"][0] + 1.0
    out = capsys.readouterr().out
    assert "own loop:" in out and "fit_image:" in out


def test_a_user_loss_trains_grows_capacity_and_continues():
    target = data.downscale(data.load_image(data.sample_image_path()), 8)
    h, w = target.shape[:2]
    params = gaussians.init_random(jax.random.key(1), 200)
    calls = []

    def l1(image, target, params):
        calls.append(1)  # traced once per compilation, not per step
        return jnp.mean(jnp.abs(image - target)) + 1e-6 * jnp.sum(params.color**2)

    opt = optax.adam(1e-2)
    first = own_loop.train(params, target, l1, optimizer=opt, iterations=30, log_every=10)
    assert first.stopped_early is None and len(first.history["step"]) == 30
    assert first.history["loss"][-1] < first.history["loss"][0]
    more = own_loop.train(params, target, l1, optimizer=opt, iterations=50, log_every=10, state=first.state)
    assert int(more.state.step) == 50 and list(more.history["step"][:2]) == [31, 32]
    assert first.capacity >= 1024 and first.history["psnr"].shape == (30,) and h * w > 0
    traced = len(calls)
    own_loop.train(params, target, l1, optimizer=opt, iterations=10, log_every=10)
    assert len(calls) == traced  # the same loss and optimiser objects: no new compilation


def test_a_nan_loss_stops_and_keeps_the_last_good_parameters():
    target = data.downscale(data.load_image(data.sample_image_path()), 8)
    params = gaussians.init_random(jax.random.key(2), 50)

    def bad(image, target, params):
        return jnp.mean(image) * jnp.nan

    out = own_loop.train(params, target, bad, optimizer=optax.adam(1e-2), iterations=20, log_every=10)
    assert "non-finite" in out.stopped_early
    for a, b in zip(out.params, params):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments_name_the_problem():
    params = gaussians.init_random(jax.random.key(0), 5)
    loss = lambda image, target, params: jnp.mean(image)
    with pytest.raises(Gauss2dError, match="iterations=0"):
        own_loop.train(params, np.zeros((8, 8, 3)), loss, optimizer=optax.adam(1e-3), iterations=0)
    with pytest.raises(Gauss2dError, match="float"):
        own_loop.train(params, np.zeros((8, 8, 3), np.uint8), loss, optimizer=optax.adam(1e-3), iterations=5)

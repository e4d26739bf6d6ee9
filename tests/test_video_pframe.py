"""The P-frame objective (gauss2d.video.pframe): closed loop, what changed, what the rate term does."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gauss2d import gaussians, metrics, render
from gauss2d.video import delta as delta_lib
from gauss2d.video import pframe
from gauss2d.video.delta import DeltaSteps, FrameState

H, W, N = 24, 32, 40
STEPS = DeltaSteps()


def _reference() -> FrameState:
    rng = np.random.default_rng(0)
    return FrameState(
        (rng.random((N, 2)) * [W, H]).astype(np.float32),
        np.log(rng.uniform(1.5, 3.0, (N, 3))).astype(np.float32) * [1, 0, 1],  # log l11, shear 0, log l22
        (rng.random((N, 3)) * [0.6, 0.3, 0.3] + [0.1, -0.15, -0.15]).astype(np.float32),
    )


def _render(state: FrameState) -> np.ndarray:
    params = delta_lib.params_from_state(state, H, W, STEPS)
    return np.asarray(render.render_clamped(gaussians.CholeskyParams(*map(jnp.asarray, params)), H, W))


@pytest.fixture(scope="module")
def moved():
    """A P-frame whose target is the reference shifted by 1.3 px to the right (lmbda small)."""
    ref = _reference()
    target = _render(ref._replace(means=ref.means + np.float32([1.3, 0.0])))
    settings = pframe.PFrameSettings(
        lmbda=1e-4, iterations=40, lr=0.5, prune_every=20, log_every=10, motion_warmup=15
    )
    return ref, target, pframe.code_pframe(ref, target, STEPS, settings, jax.random.PRNGKey(0))


def test_closed_loop_the_result_is_the_decoders_reconstruction(moved):
    ref, _, result = moved
    decoded = delta_lib.apply_delta(ref, result.delta, STEPS, H, W)
    for got, want in zip(result.state, decoded, strict=True):
        np.testing.assert_array_equal(got, want)
    params = delta_lib.params_from_state(decoded, H, W, STEPS)
    for got, want in zip(result.params, params, strict=True):
        np.testing.assert_array_equal(got, want)


def test_fine_tuning_follows_the_motion(moved):
    ref, target, result = moved
    before = float(metrics.psnr(jnp.asarray(_render(ref)), jnp.asarray(target)))
    image = _render(result.state)
    assert result.psnr == pytest.approx(
        float(metrics.psnr(jnp.asarray(image), jnp.asarray(target))), abs=1e-4
    )
    assert result.psnr > before + 3.0, (before, result.psnr)
    # A shift of the whole frame is the global motion's: tx near 1.3 px, and few mean deltas.
    d = result.delta
    shift = d.motion[4] * delta_lib.MOTION_SHIFT_STEP
    assert 0.8 < shift < 1.8, d.motion
    assert np.count_nonzero(d.d_means[:, 0]) < N // 2
    assert result.history["step"].size == 40 and result.history["bits"].size == 40


def test_only_changed_gaussians_differ_from_the_warped_reference(moved):
    ref, _, result = moved
    d = result.delta
    ref = delta_lib.warp(ref, d.motion, H, W, STEPS)  # every Gaussian moves with the global motion first
    rows = np.concatenate([d.d_means, d.d_cov, d.d_color], -1)
    assert np.all(np.any(rows != 0, -1))  # "changed" means some delta is non-zero
    same = np.setdiff1d(np.arange(N), np.concatenate([d.changed, d.removed]))
    keep = np.setdiff1d(np.arange(N), d.removed)
    where = np.searchsorted(keep, same)  # their rows in the decoded state
    for got, want in zip(result.state, ref, strict=True):
        np.testing.assert_array_equal(got[where], want[same])
    assert result.state.means.shape[0] == N - d.num_removed + d.num_added


def test_an_unchanged_frame_costs_no_delta_and_decodes_to_the_reference():
    ref = _reference()
    target = _render(ref)
    settings = pframe.PFrameSettings(lmbda=1.0, iterations=10, add_fraction=0.0, prune_every=0, log_every=10)
    result = pframe.code_pframe(ref, target, STEPS, settings, jax.random.PRNGKey(1))
    assert result.delta.num_changed == 0 and result.delta.num_added == 0 and result.delta.num_removed == 0
    for got, want in zip(result.state, ref, strict=True):
        np.testing.assert_array_equal(got, want)
    assert result.stream_bytes["means"] == result.stream_bytes["added"] == 0


def test_a_larger_lambda_spends_fewer_bits(moved):
    ref, target, cheap_run = moved
    settings = pframe.PFrameSettings(
        lmbda=0.05, iterations=40, lr=0.5, prune_every=20, log_every=10, motion_warmup=15
    )
    costly = pframe.code_pframe(ref, target, STEPS, settings, jax.random.PRNGKey(0))
    assert costly.stream_bytes["total"] < cheap_run.stream_bytes["total"]
    # Every Gaussian moves here, so both change all of them; the dearer bits buy fewer non-zero deltas.

    def nonzero(d):
        return sum(int(np.count_nonzero(x)) for x in (d.d_means, d.d_cov, d.d_color))

    assert nonzero(costly.delta) < nonzero(cheap_run.delta)


@pytest.mark.parametrize(
    "bad", [dict(lmbda=-1.0), dict(dead_zone=0.2), dict(add_fraction=2.0), dict(lr=0.0), dict(log_every=0)]
)
def test_bad_settings_name_the_problem(bad):
    with pytest.raises(ValueError, match="P-frame settings out of range"):
        pframe.PFrameSettings(**bad)

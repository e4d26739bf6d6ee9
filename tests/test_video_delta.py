"""gauss2d.video.delta: the decoder side of a P-frame (apply, state conversions, stream sizes, checks)."""

from __future__ import annotations

import numpy as np
import pytest

from gauss2d import gaussians
from gauss2d.codec import streams
from gauss2d.codec.v2.state import to_space
from gauss2d.video import delta as delta_lib
from gauss2d.video.delta import DeltaSteps, FrameState, PFrameDelta

STEPS = DeltaSteps(position=0.25, cov=(0.1, 0.2, 0.05), color=(0.01, 0.02, 0.03))


def _state(n: int, seed: int = 0) -> FrameState:
    rng = np.random.default_rng(seed)
    return FrameState(
        (rng.random((n, 2)) * [40, 30]).astype(np.float32),
        rng.normal(0.0, 0.5, (n, 3)).astype(np.float32),
        rng.random((n, 3)).astype(np.float32),
    )


def _delta(n=10) -> PFrameDelta:
    return PFrameDelta(
        n,
        np.zeros(6, np.int64),
        np.asarray([1, 4, 7]),
        np.asarray([[1, -2], [0, 3], [5, 0]]),
        np.asarray([[1, 0, 0], [0, -1, 0], [0, 0, 2]]),
        np.asarray([[0, 0, 1], [2, 0, 0], [0, -3, 0]]),
        np.asarray([2, 8]),
        np.asarray([[40, 60]]),
        np.asarray([[-3, 1, -4]]),
        np.asarray([[20, -5, 7]]),
    )


def test_apply_delta_matches_an_independent_float64_computation():
    ref, d = _state(10), _delta()
    out = delta_lib.apply_delta(ref, d, STEPS, 30, 40)
    keep = [0, 1, 3, 4, 5, 6, 7, 9]
    expect = [np.asarray(a, np.float64).copy() for a in ref]
    for row, i in enumerate([1, 4, 7]):
        expect[0][i] += d.d_means[row] * 0.25
        expect[1][i] += d.d_cov[row] * np.asarray([0.1, 0.2, 0.05])
        expect[2][i] += d.d_color[row] * np.asarray([0.01, 0.02, 0.03])
    added = (d.added_means * 0.25, d.added_cov * [0.1, 0.2, 0.05], d.added_color * [0.01, 0.02, 0.03])
    for got, want, new in zip(out, expect, added, strict=True):
        assert got.dtype == np.float32 and got.shape == (9, want.shape[1])
        np.testing.assert_allclose(got, np.concatenate([want[keep], new]), rtol=1e-6, atol=1e-6)
    # Unchanged Gaussians are the reference's values, bit for bit.
    for got, want in zip(out, ref, strict=True):
        np.testing.assert_array_equal(got[[0, 2, 4, 5]], want[[0, 3, 5, 6]])


@pytest.mark.parametrize("cov_space", ["log", "cholesky"])
def test_the_global_motion_warps_means_and_covariances_as_an_affine_map(cov_space):
    steps = DeltaSteps(cov_space=cov_space)
    rng = np.random.default_rng(3)
    chol = (
        rng.random((12, 3)) * [2, 1, 2] + [0.3, -0.5, 0.3] - np.asarray(gaussians.CHOLESKY_OFFSET)
    ).astype(np.float32)
    ref = _state(12)._replace(cov=np.asarray(delta_lib.to_cov_space(chol, cov_space), np.float32))
    motion = np.asarray([40, -25, 12, 61, 96, -33])  # a small zoom, shear, rotation and a shift
    out = delta_lib.warp(ref, motion, 30, 40, steps)
    # float64 oracle: A = I + motion[:4] / 4096, t = motion[4:] / 64, about the centre (20, 15).
    a = np.eye(2) + np.asarray(motion[:4], np.float64).reshape(2, 2) / 4096
    t = np.asarray(motion[4:], np.float64) / 64
    means = (ref.means.astype(np.float64) - [20, 15]) @ a.T + [20, 15] + t
    np.testing.assert_allclose(out.means, means, rtol=1e-6, atol=1e-4)

    def sigma(cov):
        raw = np.asarray(delta_lib.from_cov_space(np.asarray(cov, np.float32), cov_space), np.float64)
        lower = raw + np.asarray(gaussians.CHOLESKY_OFFSET)
        factor = np.zeros((len(raw), 2, 2))
        factor[:, 0, 0], factor[:, 1, 0], factor[:, 1, 1] = lower[:, 0], lower[:, 1], lower[:, 2]
        return factor @ factor.transpose(0, 2, 1)

    np.testing.assert_allclose(sigma(out.cov), a @ sigma(ref.cov) @ a.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out.color, ref.color)
    # Zero motion leaves the state bit for bit (no centre round trip).
    same = delta_lib.warp(ref, np.zeros(6, np.int64), 30, 40, steps)
    assert all(x is y for x, y in zip(same, ref, strict=True))


def test_apply_is_deterministic_and_leaves_the_reference_alone():
    ref, d = _state(10), _delta()
    copy = [a.copy() for a in ref]
    a, b = delta_lib.apply_delta(ref, d, STEPS, 30, 40), delta_lib.apply_delta(ref, d, STEPS, 30, 40)
    for x, y, r, c in zip(a, b, ref, copy, strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(r, c)


@pytest.mark.parametrize("cov_space", ["log", "cholesky"])
def test_state_and_params_round_trip(cov_space):
    rng = np.random.default_rng(2)
    steps = DeltaSteps(cov_space=cov_space)
    params = gaussians.CholeskyParams(
        rng.normal(0, 0.8, (20, 2)).astype(np.float32),
        (
            rng.random((20, 3)) * [2, 0.5, 2] + [0.1, -0.25, 0.1] - np.asarray(gaussians.CHOLESKY_OFFSET)
        ).astype(np.float32),
        rng.random((20, 3)).astype(np.float32),
    )
    state = delta_lib.state_from_params(params, 30, 40, steps)
    back = delta_lib.params_from_state(state, 30, 40, steps)
    # The means through tanh and back (float32), the covariance through its space and back.
    means = 0.5 * (np.tanh(params.xy.astype(np.float64)) + 1) * [40, 30]
    np.testing.assert_allclose(state.means, means, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(back.chol, params.chol, atol=2e-5)
    np.testing.assert_allclose(back.color, params.color, atol=2e-6)
    np.testing.assert_allclose(
        0.5 * (np.tanh(back.xy.astype(np.float64)) + 1) * [40, 30], means, rtol=1e-4, atol=1e-3
    )
    np.testing.assert_allclose(state.color, to_space(params.color, "ycbcr"), atol=1e-6)


def test_stream_bytes_count_the_real_streams():
    d = _delta()
    sizes = delta_lib.stream_bytes(d)
    status = np.asarray([0, 1, 2, 0, 1, 0, 0, 1, 2, 0])
    np.testing.assert_array_equal(delta_lib.status(d), status)
    assert sizes["status"] == len(streams.encode_stream(status))
    assert sizes["means"] == sum(len(streams.encode_stream(d.d_means[:, c])) for c in range(2))
    assert sizes["total"] == sum(v for k, v in sizes.items() if k != "total")
    empty = d._replace(
        changed=np.zeros(0, np.int64),
        d_means=np.zeros((0, 2), np.int64),
        d_cov=np.zeros((0, 3), np.int64),
        d_color=np.zeros((0, 3), np.int64),
        removed=np.zeros(0, np.int64),
        added_means=np.zeros((0, 2), np.int64),
        added_cov=np.zeros((0, 3), np.int64),
        added_color=np.zeros((0, 3), np.int64),
    )
    quiet = delta_lib.stream_bytes(empty)
    assert quiet["means"] == quiet["added"] == 0 and quiet["total"] < sizes["total"]


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(changed=np.asarray([1, 4, 10])), r"changed indices"),
        (dict(changed=np.asarray([4, 1, 7])), r"changed indices"),
        (dict(removed=np.asarray([4])), "both changed and removed"),
        (dict(d_cov=np.zeros((2, 3), np.int64)), r"d_cov has shape \(2, 3\)"),
        (dict(motion=np.zeros(5, np.int64)), r"motion has shape \(5,\)"),
        (
            dict(
                num_reference=2,
                changed=np.zeros(0, np.int64),
                d_means=np.zeros((0, 2), np.int64),
                d_cov=np.zeros((0, 3), np.int64),
                d_color=np.zeros((0, 3), np.int64),
                removed=np.asarray([0, 1]),
                added_means=np.zeros((0, 2), np.int64),
                added_cov=np.zeros((0, 3), np.int64),
                added_color=np.zeros((0, 3), np.int64),
            ),
            "would hold no Gaussian",
        ),
    ],
)
def test_inconsistent_deltas_are_refused(change, message):
    d = _delta()._replace(**change)
    with pytest.raises(ValueError, match=message):
        delta_lib.apply_delta(_state(d.num_reference), d, STEPS, 30, 40)


def test_steps_are_validated():
    with pytest.raises(ValueError, match="finite and > 0"):
        DeltaSteps(position=0.0)
    with pytest.raises(ValueError, match="unknown"):
        DeltaSteps(cov_space="polar")

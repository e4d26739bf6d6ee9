"""Tests for gauss2d.rd.bjontegaard.

Expected values come from outside the code under test:
- constructions whose answer is exact (rates scaled by 0.8 -> -20%, quality
  shifted by 1.5 dB -> +1.5 dB; PCHIP reproduces straight lines, so two lines
  give a closed-form integral);
- a 4-point curve whose PCHIP slopes and integrals are worked out by hand
  below, as fractions;
- SciPy's PchipInterpolator (an independent implementation) on random curves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gauss2d.errors import Gauss2dError
from gauss2d.rd import bjontegaard as bj

# The classic 4-point anchor: rates doubling per point, PSNR gains 3, 2.5, 2 dB.
CLASSIC_RATES = [100.0, 200.0, 400.0, 800.0]
CLASSIC_PSNR = [30.0, 33.0, 35.5, 37.5]


def random_curve(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A random strictly increasing RD curve, [n] bpp and [n] PSNR, returned in shuffled order.

    Ends are drawn near (0.1 bpp, 24.5 dB) and (1.5 bpp, 35 dB), so any two such
    curves overlap over most of their quality and rate ranges; interior points are
    independent sorted draws, so the curve is far from a straight line.
    """
    log_bpp = np.concatenate(
        [rng.uniform(-2.7, -2.0, 1), np.sort(rng.uniform(-2.0, 0.0, n - 2)), rng.uniform(0.0, 0.7, 1)]
    )
    psnr = np.concatenate(
        [rng.uniform(23.0, 26.0, 1), np.sort(rng.uniform(26.0, 33.0, n - 2)), rng.uniform(33.0, 38.0, 1)]
    )
    order = rng.permutation(n)
    return np.exp(log_bpp)[order], psnr[order]


def anchor_curve(shape: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Anchor curves for the exact-answer tests: [n] rates and [n] qualities, in random order."""
    if shape == "classic":
        return np.array(CLASSIC_RATES), np.array(CLASSIC_PSNR)
    rate = np.sort(rng.uniform(0.05, 2.0, n))
    rate += 0.01 * np.arange(n)  # strictly increasing even if two draws coincide
    if shape == "linear_in_log_rate":
        quality = 30.0 + 4.0 * np.log2(rate)
    else:  # "concave": saturating quality, far from linear in log rate
        quality = 40.0 - 6.0 / np.sqrt(rate)
    order = rng.permutation(n)
    return rate[order], quality[order]


EXACT_CASES = [("classic", 4)] + [(s, n) for s in ("linear_in_log_rate", "concave") for n in (2, 3, 5, 9)]


@pytest.mark.parametrize(("shape", "n"), EXACT_CASES)
def test_rates_times_0_8_is_minus_20_percent(shape, n):
    # log(0.8 r) = log r + log 0.8 at every knot, and PCHIP slopes depend only on
    # differences of y, so the test interpolant is the anchor's plus log 0.8 exactly.
    rng = np.random.default_rng(n)
    rate, quality = anchor_curve(shape, n, rng)
    assert bj.bd_rate(rate, quality, 0.8 * rate, quality) == pytest.approx(-20.0, abs=1e-9)
    assert bj.bd_rate(0.8 * rate, quality, rate, quality) == pytest.approx(25.0, abs=1e-9)


@pytest.mark.parametrize(("shape", "n"), EXACT_CASES)
def test_quality_plus_1_5_db_is_bd_psnr_1_5(shape, n):
    rng = np.random.default_rng(100 + n)
    rate, quality = anchor_curve(shape, n, rng)
    assert bj.bd_psnr(rate, quality, rate, quality + 1.5) == pytest.approx(1.5, abs=1e-9)
    assert bj.bd_psnr(rate, quality + 1.5, rate, quality) == pytest.approx(-1.5, abs=1e-9)


@pytest.mark.parametrize(
    ("anchor_q", "test_q"), [([30.0, 38.0], [32.0, 40.0]), ([30.0, 31.0, 35.0, 38.0], [32.0, 34.5, 40.0])]
)
def test_two_lines_with_different_slopes(anchor_q, test_q):
    """Worked example: log rate linear in PSNR on both curves, partial overlap [32, 38] dB.

    PCHIP through collinear points is that line (every secant equals the slope,
    so harmonic means and the end formula return it). With
    log r_a = a0 + a1 q and log r_t = b0 + b1 q the gap is linear in q, and its
    mean over [32, 38] is its value at the midpoint 35:
        BD-rate = exp((b0 - a0) + (b1 - a1) * 35) - 1.
    Inverting, q = (log r - a0) / a1 is linear in log r too, so BD-PSNR is the
    gap of the inverse lines at the midpoint of the common log-rate interval.
    """
    a0, a1 = -7.5, 0.23  # anchor: ~0.55 bpp at 30 dB, +26% rate per dB
    b0, b1 = -6.2, 0.19  # test: flatter, cheaper at high quality
    anchor_q, test_q = np.array(anchor_q), np.array(test_q)
    rate_a, rate_t = np.exp(a0 + a1 * anchor_q), np.exp(b0 + b1 * test_q)

    expected_rate = math.expm1((b0 - a0) + (b1 - a1) * (32.0 + 38.0) / 2.0) * 100.0
    assert bj.bd_rate(rate_a, anchor_q, rate_t, test_q) == pytest.approx(expected_rate, abs=1e-9)

    lo = max(a0 + a1 * 30.0, b0 + b1 * 32.0)  # common log-rate interval
    hi = min(a0 + a1 * 38.0, b0 + b1 * 40.0)
    mid = (lo + hi) / 2.0
    expected_psnr = (mid - b0) / b1 - (mid - a0) / a1
    assert bj.bd_psnr(rate_a, anchor_q, rate_t, test_q) == pytest.approx(expected_psnr, abs=1e-9)


def test_classic_four_points_against_hand_derivation():
    """Anchor: rates [100, 200, 400, 800], PSNR [30, 33, 35.5, 37.5]; test: the same PSNRs at twice the rates.

    BD-rate: log(2r) = log r + log 2 at every quality, so exactly +100%.

    BD-PSNR, by hand: in (u = log rate, PSNR) the test curve is the anchor
    shifted right by L = log 2, so over the common interval [log 200, log 800]
        integral(test) - integral(anchor) = piece_0 - piece_2
    where piece_k is the integral of the anchor's k-th piece (all of width L).
    Secants: m = [3, 2.5, 2] / L. Equal widths make the interior PCHIP slopes
    plain harmonic means: d1 = 2*3*2.5/5.5 / L = 30/11 / L, d2 = 2*2.5*2/4.5 / L
    = 20/9 / L. End slopes (3*m0 - m1)/2 = 13/4 / L and (3*m2 - m1)/2 = 7/4 / L
    (same sign as the end secants, so not clamped). A cubic Hermite piece
    integrates to h*(y0 + y1)/2 + h^2*(d0 - d1)/12, so
        piece_0 = L*31.5 + L*(13/4 - 30/11)/12 = L*(31.5 + (23/44)/12)
        piece_2 = L*36.5 + L*(20/9 - 7/4)/12 = L*(36.5 + (17/36)/12)
    and the mean gap over the interval of width 2L is
        (-5 + (23/44 - 17/36)/12) / 2 = (-5 + (5/99)/12) / 2 = -5/2 + 5/2376.
    """
    rate_t = [2.0 * r for r in CLASSIC_RATES]
    assert bj.bd_rate(CLASSIC_RATES, CLASSIC_PSNR, rate_t, CLASSIC_PSNR) == pytest.approx(100.0, abs=1e-9)
    expected = -5.0 / 2.0 + 5.0 / 2376.0  # -2.4978956...
    assert bj.bd_psnr(CLASSIC_RATES, CLASSIC_PSNR, rate_t, CLASSIC_PSNR) == pytest.approx(expected, abs=1e-12)
    assert bj.bd_psnr(rate_t, CLASSIC_PSNR, CLASSIC_RATES, CLASSIC_PSNR) == pytest.approx(
        -expected, abs=1e-12
    )


def scipy_bd(rate_a, q_a, rate_t, q_t) -> tuple[float, float]:
    """Reference (BD-rate, BD-PSNR) from SciPy's PchipInterpolator.integrate."""
    interpolate = pytest.importorskip("scipy.interpolate")
    ia, it = np.argsort(rate_a), np.argsort(rate_t)
    ua, qa, ut, qt = np.log(rate_a[ia]), q_a[ia], np.log(rate_t[it]), q_t[it]

    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    gap = interpolate.PchipInterpolator(qt, ut).integrate(lo, hi) - interpolate.PchipInterpolator(
        qa, ua
    ).integrate(lo, hi)
    rate = math.expm1(gap / (hi - lo)) * 100.0

    lo, hi = max(ua[0], ut[0]), min(ua[-1], ut[-1])
    gap = interpolate.PchipInterpolator(ut, qt).integrate(lo, hi) - interpolate.PchipInterpolator(
        ua, qa
    ).integrate(lo, hi)
    return rate, gap / (hi - lo)


@pytest.mark.parametrize("seed", range(12))
def test_matches_scipy_pchip_on_random_curves(seed):
    rng = np.random.default_rng(seed)
    rate_a, q_a = random_curve(rng, int(rng.integers(4, 7)))
    rate_t, q_t = random_curve(rng, int(rng.integers(4, 7)))
    # Shift the test curve so the two always overlap partially in both quality and rate.
    rate_t, q_t = rate_t * 1.3, q_t + 0.7
    expected_rate, expected_psnr = scipy_bd(rate_a, q_a, rate_t, q_t)
    assert bj.bd_rate(rate_a, q_a, rate_t, q_t) == pytest.approx(expected_rate, rel=1e-9, abs=1e-12)
    assert bj.bd_psnr(rate_a, q_a, rate_t, q_t) == pytest.approx(expected_psnr, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_pchip_matches_scipy_on_arbitrary_data(n):
    # Non-monotone data exercise the zero-slope and 3*m0 end-clamp branches.
    interpolate = pytest.importorskip("scipy.interpolate")
    rng = np.random.default_rng(7 * n)
    x = np.cumsum(rng.uniform(0.1, 2.0, n))
    y = rng.normal(size=n)
    y[rng.integers(0, n)] = y[0]  # a flat stretch or repeated value
    p, ref = bj.pchip(x, y), interpolate.PchipInterpolator(x, y)
    xq = np.linspace(x[0], x[-1], 301)
    np.testing.assert_allclose(bj.pchip_eval(p, xq), ref(xq), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p.d, ref.derivative()(x), rtol=1e-12, atol=1e-12)
    a, b = np.sort(rng.uniform(x[0], x[-1], 2))
    assert bj.pchip_integrate(p, a, b) == pytest.approx(ref.integrate(a, b), rel=1e-9, abs=1e-12)
    assert bj.pchip_integrate(p, x[0], x[-1]) == pytest.approx(
        ref.integrate(x[0], x[-1]), rel=1e-9, abs=1e-12
    )


@pytest.mark.parametrize("seed", range(20))
def test_pchip_preserves_shape(seed):
    """Between two knots the interpolant stays within their values and is monotone (no overshoot)."""
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(2, 9))
    x = np.cumsum(rng.uniform(0.05, 3.0, n))
    y = rng.normal(size=n) * 10.0 if seed % 2 else np.cumsum(rng.exponential(size=n))
    p = bj.pchip(x, y)
    t = np.linspace(0.0, 1.0, 101)
    for k in range(n - 1):
        v = bj.pchip_eval(p, x[k] + t * (x[k + 1] - x[k]))  # [101]
        tol = 1e-12 * max(1.0, np.abs(y).max())
        assert v.min() >= min(y[k], y[k + 1]) - tol
        assert v.max() <= max(y[k], y[k + 1]) + tol
        if y[k + 1] >= y[k]:
            assert np.all(np.diff(v) >= -tol)
        else:
            assert np.all(np.diff(v) <= tol)


@pytest.mark.parametrize("seed", range(8))
def test_swapping_anchor_and_test(seed):
    # The common interval is the same either way and the mean gap changes sign, so
    # the rate ratios are reciprocal: (1 + x)(1 + y) = 1, and BD-PSNR is antisymmetric.
    rng = np.random.default_rng(500 + seed)
    rate_a, q_a = random_curve(rng, int(rng.integers(2, 7)))
    rate_t, q_t = random_curve(rng, int(rng.integers(2, 7)))
    rate_t, q_t = rate_t * 1.2, q_t + 0.5
    x = bj.bd_rate(rate_a, q_a, rate_t, q_t) / 100.0
    y = bj.bd_rate(rate_t, q_t, rate_a, q_a) / 100.0
    assert (1.0 + x) * (1.0 + y) == pytest.approx(1.0, abs=1e-12)
    assert bj.bd_psnr(rate_a, q_a, rate_t, q_t) == pytest.approx(
        -bj.bd_psnr(rate_t, q_t, rate_a, q_a), abs=1e-12
    )


def test_input_order_does_not_matter():
    rate, q = np.array(CLASSIC_RATES), np.array(CLASSIC_PSNR)
    rate_t, q_t = rate * 0.9, q + np.array([0.4, 0.1, 0.3, 0.2])
    perm = [2, 0, 3, 1]
    assert bj.bd_rate(rate[perm], q[perm], rate_t, q_t) == bj.bd_rate(rate, q, rate_t, q_t)
    assert bj.bd_psnr(rate, q, list(rate_t[perm]), list(q_t[perm])) == bj.bd_psnr(rate, q, rate_t, q_t)


# --- errors -------------------------------------------------------------------------------------------


def test_error_is_a_gauss2d_error():
    assert issubclass(bj.BjontegaardError, Gauss2dError)


@pytest.mark.parametrize("fn", [bj.bd_rate, bj.bd_psnr])
def test_non_monotonic_curve_names_curve_and_points(fn):
    good_r, good_q = CLASSIC_RATES, CLASSIC_PSNR
    bad_r, bad_q = [100.0, 400.0, 200.0, 800.0], [30.0, 33.0, 34.0, 37.5]  # sorted: 200 -> 34, 400 -> 33
    with pytest.raises(bj.BjontegaardError, match=r"test curve is not strictly monotonic") as err:
        fn(good_r, good_q, bad_r, bad_q)
    assert "rate=200, quality=34" in str(err.value) and "rate=400, quality=33" in str(err.value)
    with pytest.raises(bj.BjontegaardError, match=r"anchor curve is not strictly monotonic"):
        fn(bad_r, bad_q, good_r, good_q)


@pytest.mark.parametrize(
    ("rate", "quality"),
    [([1.0, 2.0, 3.0], [30.0, 30.0, 31.0]), ([1.0, 2.0, 2.0], [30.0, 31.0, 32.0])],
    ids=["flat_quality", "repeated_rate"],
)
def test_ties_are_not_strictly_monotonic(rate, quality):
    with pytest.raises(bj.BjontegaardError, match="anchor curve is not strictly monotonic"):
        bj.bd_rate(rate, quality, [1.0, 4.0], [29.0, 33.0])


def test_no_common_quality_interval_names_both_ranges():
    with pytest.raises(bj.BjontegaardError, match=r"no common quality interval.*\[30, 33\].*\[34, 36\]"):
        bj.bd_rate([1.0, 2.0], [30.0, 33.0], [1.0, 2.0], [34.0, 36.0])
    # Ranges that only touch leave an interval of zero length: no mean either.
    with pytest.raises(bj.BjontegaardError, match="no common quality interval"):
        bj.bd_rate([1.0, 2.0], [30.0, 33.0], [1.0, 2.0], [33.0, 36.0])


def test_no_common_rate_interval_names_both_ranges():
    with pytest.raises(bj.BjontegaardError, match=r"no common rate .*\[0\.1, 0\.2\].*\[0\.5, 1\]"):
        bj.bd_psnr([0.1, 0.2], [30.0, 33.0], [0.5, 1.0], [30.0, 33.0])


@pytest.mark.parametrize(
    ("rate", "quality", "pattern"),
    [
        ([1.0], [30.0], r"anchor curve has 1 point\(s\); BD metrics need at least 2"),
        ([], [], r"anchor curve has 0 point\(s\)"),
        ([1.0, 2.0, 3.0], [30.0, 31.0], "anchor curve has 3 rates but 2 quality values"),
        ([1.0, 0.0, 3.0], [30.0, 31.0, 32.0], r"anchor curve: rate\[1\] = 0 must be > 0"),
        ([1.0, -2.0, 3.0], [30.0, 31.0, 32.0], r"anchor curve: rate\[1\] = -2 must be > 0"),
        ([1.0, 2.0, 3.0], [30.0, float("nan"), 32.0], r"anchor curve: quality\[1\] = nan is not finite"),
        ([1.0, float("inf"), 3.0], [30.0, 31.0, 32.0], r"anchor curve: rate\[1\] = inf is not finite"),
        ([[1.0, 2.0]], [[30.0, 31.0]], "anchor curve: rates and qualities must be 1-D"),
    ],
    ids=["one_point", "empty", "lengths", "zero_rate", "negative_rate", "nan", "inf", "2d"],
)
@pytest.mark.parametrize("fn", [bj.bd_rate, bj.bd_psnr])
def test_bad_input(fn, rate, quality, pattern):
    with pytest.raises(bj.BjontegaardError, match=pattern):
        fn(rate, quality, CLASSIC_RATES, CLASSIC_PSNR)
    with pytest.raises(bj.BjontegaardError, match=pattern.replace("anchor", "test")):
        fn(CLASSIC_RATES, CLASSIC_PSNR, rate, quality)


def test_pchip_integrate_refuses_extrapolation():
    p = bj.pchip(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 4.0]))
    with pytest.raises(ValueError, match="not inside the knot range"):
        bj.pchip_integrate(p, -0.5, 1.0)

"""Bjontegaard delta metrics (BD-rate, BD-PSNR) with monotone piecewise-cubic interpolation.

Bjontegaard (VCEG-M33, 2001) compares two rate-distortion curves by fitting
each one, integrating the gap between them over the interval where both are
defined, and dividing by the interval's length. The original fit is a
3rd-order polynomial through four points, which can overshoot and even turn
non-monotonic between points; the common test conditions of JVET (the
JVET-CTC spreadsheet) and AOM (libaom's ``bd_rate``) instead use piecewise
cubic Hermite interpolation with Fritsch-Carlson monotone slopes (PCHIP),
which passes through every point, keeps monotone data monotone, and accepts
any number of points. That is the form computed here:

- ``bd_rate``: interpolate log(rate) as a function of quality for each curve;
  the mean of (test - anchor) over the common quality interval is the mean
  log rate ratio at equal quality, reported as ``(exp(mean) - 1) * 100`` percent
  (negative: the test codec needs fewer bits).
- ``bd_psnr``: interpolate quality as a function of log(rate); the mean of
  (test - anchor) over the common log-rate interval is the mean quality gain
  at equal rate (positive: the test codec is better).

The natural logarithm is used throughout; VCEG-M33's log10 / 10**x gives the
same percentage. "Quality" is any higher-is-better measure: PSNR in dB,
MS-SSIM, or MS-SSIM in dB (``-10 * log10(1 - ms_ssim)``), as long as anchor
and test use the same one. PCHIP and its exact integral are implemented here
in NumPy (SciPy is not a gauss2d dependency); ``PchipInterpolator`` from SciPy
is the test oracle (tests/test_bjontegaard.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gauss2d.errors import Gauss2dError


class BjontegaardError(Gauss2dError):
    """Rate-distortion curves that cannot be compared (unsorted quality, no overlap, bad values)."""


class Pchip(NamedTuple):
    """A piecewise cubic Hermite interpolant: through (x[k], y[k]) with slope d[k]."""

    x: np.ndarray  # [K] strictly increasing knots, K >= 2
    y: np.ndarray  # [K] values at the knots
    d: np.ndarray  # [K] dy/dx at the knots


def _edge_slope(h0: float, h1: float, m0: float, m1: float) -> float:
    """End-point slope: the one-sided three-point estimate, made shape-preserving.

    Fritsch & Carlson's end condition as in Moler, "Numerical Computing with
    MATLAB", sec. 3.4 (and SciPy's ``PchipInterpolator``): the slope must
    have the sign of the end secant ``m0``, and is capped at ``3 * m0`` when the
    data turn at the next knot, so the end piece cannot overshoot.
    """
    d = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > 3.0 * abs(m0):
        return 3.0 * m0
    return d


def pchip(x: np.ndarray, y: np.ndarray) -> Pchip:
    """Fritsch-Carlson monotone slopes for the data (x, y).

    Interior slopes are the weighted harmonic mean of the neighbouring secants
    (Fritsch & Butland 1984) when those secants have the same sign, else 0 (a
    local extremum stays at the knot). With only 2 points the interpolant is
    the straight line through them (both slopes equal the secant), so BD
    metrics on 2-point curves are those of piecewise-linear curves.

    Args:
        x: [K] strictly increasing knots, K >= 2.
        y: [K] values.

    Returns:
        The interpolant, float64.

    Raises:
        ValueError: fewer than 2 knots, mismatched shapes or knots not strictly increasing
            (a programming error: the BD functions validate their inputs first).
    """
    x = np.asarray(x, dtype=np.float64)  # [K]
    y = np.asarray(y, dtype=np.float64)  # [K]
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"pchip needs two 1-D arrays of equal length >= 2, got {x.shape=} and {y.shape=}")
    h = np.diff(x)  # [K-1]
    if not np.all(h > 0):
        raise ValueError(f"pchip knots must be strictly increasing, got {x}")
    m = np.diff(y) / h  # [K-1] secant slopes
    if x.size == 2:
        return Pchip(x, y, np.array([m[0], m[0]]))

    d = np.empty_like(x)  # [K]
    m_left, m_right = m[:-1], m[1:]  # [K-2] each, the secants either side of knot k = 1..K-2
    h_left, h_right = h[:-1], h[1:]
    w_left = 2.0 * h_right + h_left
    w_right = h_right + 2.0 * h_left
    same_sign = np.sign(m_left) * np.sign(m_right) > 0
    # Substitute 1.0 where the slope will be 0 anyway, so no division by a zero secant.
    safe_left = np.where(same_sign, m_left, 1.0)
    safe_right = np.where(same_sign, m_right, 1.0)
    harmonic = (w_left + w_right) / (w_left / safe_left + w_right / safe_right)
    d[1:-1] = np.where(same_sign, harmonic, 0.0)
    d[0] = _edge_slope(h[0], h[1], m[0], m[1])
    d[-1] = _edge_slope(h[-1], h[-2], m[-1], m[-2])
    return Pchip(x, y, d)


def _piece_antiderivative(p: Pchip, t: np.ndarray) -> np.ndarray:  # t: [K-1] in [0, 1]
    """Integral of each piece from its left knot to ``x[k] + t[k] * h[k]``, [K-1].

    Integrates the cubic Hermite basis in t exactly: h00 = 2t^3 - 3t^2 + 1,
    h10 = t^3 - 2t^2 + t, h01 = -2t^3 + 3t^2, h11 = t^3 - t^2 (times h for x).
    At t = 1 this is the classical h (y0 + y1) / 2 + h^2 (d0 - d1) / 12.
    """
    h = np.diff(p.x)  # [K-1]
    y0, y1 = p.y[:-1], p.y[1:]
    d0, d1 = p.d[:-1], p.d[1:]
    t2, t3, t4 = t * t, t**3, t**4
    return h * (
        y0 * (t - t3 + t4 / 2.0)
        + h * d0 * (t2 / 2.0 - 2.0 * t3 / 3.0 + t4 / 4.0)
        + y1 * (t3 - t4 / 2.0)
        + h * d1 * (t4 / 4.0 - t3 / 3.0)
    )


def pchip_integrate(p: Pchip, a: float, b: float) -> float:
    """Exact integral of the interpolant over [a, b], inside the knot range.

    Args:
        p: the interpolant.
        a: lower limit, ``p.x[0] <= a``.
        b: upper limit, ``a <= b <= p.x[-1]``.

    Returns:
        The integral (a float).

    Raises:
        ValueError: [a, b] is not a sub-interval of [x[0], x[-1]] (no extrapolation:
            BD metrics only integrate where both curves have data).
    """
    if not p.x[0] <= a <= b <= p.x[-1]:
        raise ValueError(
            f"integration interval [{a}, {b}] is not inside the knot range [{p.x[0]}, {p.x[-1]}]"
        )
    h = np.diff(p.x)  # [K-1]
    # Clip [a, b] to every piece; pieces outside it get t_lo == t_hi and add 0.
    t_lo = (np.clip(a, p.x[:-1], p.x[1:]) - p.x[:-1]) / h  # [K-1]
    t_hi = (np.clip(b, p.x[:-1], p.x[1:]) - p.x[:-1]) / h  # [K-1]
    return float(np.sum(_piece_antiderivative(p, t_hi) - _piece_antiderivative(p, t_lo)))


def pchip_eval(p: Pchip, xq: np.ndarray) -> np.ndarray:
    """Values of the interpolant at ``xq`` (any shape); outside the knots the end pieces extend.

    Args:
        p: the interpolant.
        xq: query points.

    Returns:
        Interpolated values, same shape as ``xq``, float64.
    """
    xq = np.asarray(xq, dtype=np.float64)
    k = np.clip(np.searchsorted(p.x, xq, side="right") - 1, 0, p.x.size - 2)  # piece index, xq's shape
    h = p.x[k + 1] - p.x[k]
    t = (xq - p.x[k]) / h
    t2, t3 = t * t, t**3
    return (
        (2.0 * t3 - 3.0 * t2 + 1.0) * p.y[k]
        + (t3 - 2.0 * t2 + t) * h * p.d[k]
        + (3.0 * t2 - 2.0 * t3) * p.y[k + 1]
        + (t3 - t2) * h * p.d[k + 1]
    )


def _checked_curve(name: str, rate, quality) -> tuple[np.ndarray, np.ndarray]:
    """Validate one curve and return (rate, quality) sorted by rate, each [K] float64.

    Raises:
        BjontegaardError: if the curve is unusable; the message names the curve.
    """
    rate = np.asarray(rate, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    if rate.ndim != 1 or quality.ndim != 1:
        raise BjontegaardError(
            f"{name} curve: rates and qualities must be 1-D sequences, "
            f"got shapes {rate.shape} and {quality.shape}"
        )
    if rate.size != quality.size:
        raise BjontegaardError(f"{name} curve has {rate.size} rates but {quality.size} quality values")
    if rate.size < 2:
        raise BjontegaardError(f"{name} curve has {rate.size} point(s); BD metrics need at least 2")
    for what, values in (("rate", rate), ("quality", quality)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise BjontegaardError(f"{name} curve: {what}[{bad[0]}] = {values[bad[0]]} is not finite")
    bad = np.flatnonzero(rate <= 0)
    if bad.size:
        raise BjontegaardError(
            f"{name} curve: rate[{bad[0]}] = {rate[bad[0]]:.10g} must be > 0 (it is logged)"
        )

    order = np.argsort(rate, kind="stable")
    rate, quality = rate[order], quality[order]
    # Both interpolations invert the curve (log rate of quality, quality of log rate),
    # so a tie or a dip makes it multivalued; report the first offending neighbours.
    bad = np.flatnonzero((np.diff(rate) <= 0) | (np.diff(quality) <= 0))
    if bad.size:
        i = bad[0]
        raise BjontegaardError(
            f"{name} curve is not strictly monotonic: after sorting by rate, point "
            f"(rate={rate[i]:.10g}, quality={quality[i]:.10g}) is followed by "
            f"(rate={rate[i + 1]:.10g}, quality={quality[i + 1]:.10g}); quality must strictly "
            "increase with rate"
        )
    return rate, quality


def _mean_gap(x_anchor, y_anchor, x_test, y_test, axis: str, show) -> float:  # x_*, y_*: [K] sorted
    """Mean of (test - anchor) interpolants over the common x interval.

    Args:
        x_anchor, y_anchor, x_test, y_test: sorted knots and values of both curves.
        axis: name of the x axis for the error message.
        show: maps an x value to the number shown in the error message.
    """
    lo = max(x_anchor[0], x_test[0])
    hi = min(x_anchor[-1], x_test[-1])
    if not lo < hi:
        raise BjontegaardError(
            f"anchor and test curves have no common {axis} interval: anchor spans "
            f"[{show(x_anchor[0]):.10g}, {show(x_anchor[-1]):.10g}], test spans "
            f"[{show(x_test[0]):.10g}, {show(x_test[-1]):.10g}]"
        )
    gap = pchip_integrate(pchip(x_test, y_test), lo, hi) - pchip_integrate(pchip(x_anchor, y_anchor), lo, hi)
    return gap / (hi - lo)


def bd_rate(rate_anchor, dist_anchor, rate_test, dist_test) -> float:
    """Bjontegaard delta rate: mean percent rate change of test vs anchor at equal quality.

    Args:
        rate_anchor: [K] anchor rates (bpp, bits, kbps: any positive unit, same for both curves),
            in any order.
        dist_anchor: [K] anchor quality at those rates (PSNR, MS-SSIM, ...: higher is better;
            "dist" after Bjontegaard's naming).
        rate_test: [J] test rates, J >= 2 (J may differ from K).
        dist_test: [J] test quality.

    Returns:
        ``(exp(mean log(rate_test / rate_anchor)) - 1) * 100`` over the common quality interval;
        e.g. -20.0 when the test needs 20% fewer bits throughout.

    Raises:
        BjontegaardError: a curve with fewer than 2 points, mismatched lengths, a non-finite value,
            a rate <= 0, quality not strictly increasing with rate, or no common quality interval.
    """
    ra, qa = _checked_curve("anchor", rate_anchor, dist_anchor)
    rt, qt = _checked_curve("test", rate_test, dist_test)
    mean_log_ratio = _mean_gap(qa, np.log(ra), qt, np.log(rt), "quality", show=lambda q: q)
    return float(np.expm1(mean_log_ratio) * 100.0)


def bd_psnr(rate_anchor, dist_anchor, rate_test, dist_test) -> float:
    """Bjontegaard delta quality: mean quality change of test vs anchor at equal rate.

    Called BD-PSNR since quality is usually PSNR (the result is then in dB); with MS-SSIM
    it is BD-MS-SSIM in the same unit as the inputs.

    Args:
        rate_anchor: [K] anchor rates (any positive unit, same for both curves), in any order.
        dist_anchor: [K] anchor quality at those rates (higher is better).
        rate_test: [J] test rates, J >= 2.
        dist_test: [J] test quality.

    Returns:
        Mean of (test - anchor) quality over the common log-rate interval; positive when the
        test codec is better.

    Raises:
        BjontegaardError: as for ``bd_rate``, or no common rate interval.
    """
    ra, qa = _checked_curve("anchor", rate_anchor, dist_anchor)
    rt, qt = _checked_curve("test", rate_test, dist_test)
    # The message shows rates, not their logs, so the user can match it to the inputs.
    return float(_mean_gap(np.log(ra), qa, np.log(rt), qt, "rate (log-rate)", show=np.exp))

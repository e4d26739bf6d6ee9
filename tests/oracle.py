"""An independent float64 NumPy implementation of DESIGN.md section 2.

Written from the design text alone (it imports nothing from gauss2d), so the
renderers are checked against the specification, not against themselves.
Gradients are the analytic derivatives of the same formula.
"""

from __future__ import annotations

import math

import numpy as np

S_MAX = math.log(255.0)
# Conics with ac - b^2 <= DEGENERATE_REL * a * c contribute nothing
# (README, "The rendered function").
DEGENERATE_REL = 1e-6


def _valid(means, conics, colors):
    a, b, c = conics[:, 0], conics[:, 1], conics[:, 2]
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(means).all(1) & np.isfinite(conics).all(1) & np.isfinite(colors).all(1)
        det = a * c - b * b
        return finite & (a > 0) & (c > 0) & (det > DEGENERATE_REL * a * c)


def _pieces(means, conics, height, width):
    means = np.asarray(means, np.float64)
    conics = np.asarray(conics, np.float64)
    y, x = np.mgrid[0:height, 0:width]
    px = x.reshape(-1).astype(np.float64) + 0.5  # [P]
    py = y.reshape(-1).astype(np.float64) + 0.5
    dx = px[:, None] - means[None, :, 0]  # [P, N]
    dy = py[:, None] - means[None, :, 1]
    a, b, c = conics[:, 0], conics[:, 1], conics[:, 2]
    s = 0.5 * a * dx * dx + b * dx * dy + 0.5 * c * dy * dy
    return dx, dy, s


def render(means, conics, colors, height, width):
    """I(p) = sum_n c_n w_n(p): [height, width, 3] float64."""
    means, conics, colors = (np.asarray(v, np.float64) for v in (means, conics, colors))
    valid = _valid(means, conics, colors)
    means, conics, colors = means[valid], conics[valid], colors[valid]
    _, _, s = _pieces(means, conics, height, width)
    w = np.where(s <= S_MAX, np.exp(-s), 0.0)
    return (w @ colors).reshape(height, width, 3)


def render_vjp(means, conics, colors, height, width, cotangent):
    """Gradients of sum(cotangent * I) w.r.t. means, conics and colours (float64)."""
    means, conics, colors = (np.asarray(v, np.float64) for v in (means, conics, colors))
    valid = _valid(means, conics, colors)
    g_means, g_conics, g_colors = np.zeros_like(means), np.zeros_like(conics), np.zeros_like(colors)
    m, q, col = means[valid], conics[valid], colors[valid]
    dx, dy, s = _pieces(m, q, height, width)
    w = np.where(s <= S_MAX, np.exp(-s), 0.0)  # [P, N]
    g = np.asarray(cotangent, np.float64).reshape(-1, 3)  # [P, 3]
    g_colors[valid] = w.T @ g
    d_s = -(g @ col.T) * w  # dL/ds, [P, N]
    a, b, c = q[:, 0], q[:, 1], q[:, 2]
    g_means[valid] = np.stack([-(d_s * (a * dx + b * dy)).sum(0), -(d_s * (b * dx + c * dy)).sum(0)], axis=1)
    g_conics[valid] = np.stack(
        [(d_s * 0.5 * dx * dx).sum(0), (d_s * dx * dy).sum(0), (d_s * 0.5 * dy * dy).sum(0)], axis=1
    )
    return g_means, g_conics, g_colors


def random_gaussians(rng: np.random.Generator, n, height, width, *, min_scale=0.3, max_scale=None):
    """Random Gaussians in float32: means partly off-image, scales from tiny to huge.

    Returns (means [N, 2], conics [N, 3], colors [N, 3]) as float32 arrays.
    """
    max_scale = max_scale or 1.5 * max(height, width)
    means = rng.uniform([-0.2 * width, -0.2 * height], [1.2 * width, 1.2 * height], size=(n, 2))
    scales = np.exp(rng.uniform(np.log(min_scale), np.log(max_scale), size=(n, 2)))
    theta = rng.uniform(0, np.pi, size=n)
    cos, sin = np.cos(theta), np.sin(theta)
    s1, s2 = scales[:, 0] ** 2, scales[:, 1] ** 2
    sxx, sxy, syy = cos * cos * s1 + sin * sin * s2, cos * sin * (s1 - s2), sin * sin * s1 + cos * cos * s2
    det = sxx * syy - sxy * sxy
    conics = np.stack([syy / det, -sxy / det, sxx / det], axis=1)
    colors = rng.normal(0.3, 0.5, size=(n, 3))
    return means.astype(np.float32), conics.astype(np.float32), colors.astype(np.float32)


def rel_err(x, ref) -> float:
    """||x - ref|| / ||ref||."""
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(x - ref) / max(np.linalg.norm(ref), 1e-300))


# ---------------------------------------------------------------------------
# The alpha-composited model (DESIGN.md section 2b), float64, from the text:
#   alpha_n = min(0.99, o_n w_n), counted only if alpha_n >= 1/255;
#   front to back in ascending depth, ties by index;
#   T_1 = 1, T_{n+1} = T_n (1 - alpha_n);  I = sum_n T_n alpha_n c_n + T_final bg;
#   stop rule (gauss2d's reading of "stops once T < 1e-4"): a Gaussian whose
#   alpha would take T below ALPHA_T_STOP is not counted and the pixel stops
#   there (3D Gaussian Splatting's `test_T < 0.0001f` rule), so T never falls
#   below it. ALPHA_T_STOP sits 1e-4 relative below 1e-4: two clamped
#   Gaussians give exactly 0.01^2 = 1e-4, where float32 and float64 rounding
#   would otherwise disagree; the margin puts that case on the "counts" side,
#   as exact arithmetic does.

ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
ALPHA_T_STOP = 1e-4 * (1.0 - 1e-4)


def _alpha_order(means, conics, colors, opacities, depths):
    """Indices of the valid Gaussians in compositing order (depth, then index)."""
    with np.errstate(invalid="ignore"):
        valid = _valid(means, conics, colors) & np.isfinite(opacities) & np.isfinite(depths)
    idx = np.flatnonzero(valid)
    return idx[np.lexsort((idx, depths[idx]))]


def _alpha_pieces(means, conics, colors, opacities, depths, height, width):
    arrays = (means, conics, colors, opacities, depths)
    means, conics, colors, opacities, depths = (np.asarray(v, np.float64) for v in arrays)
    order = _alpha_order(means, conics, colors, opacities, depths)
    m, q, col, o = means[order], conics[order], colors[order], opacities[order]
    dx, dy, s = _pieces(m, q, height, width)  # [P, K] in compositing order
    w = np.where(s <= S_MAX, np.exp(-s), 0.0)
    raw = o[None, :] * w
    alpha = np.minimum(ALPHA_MAX, raw)
    counted = alpha >= ALPHA_MIN
    # T after each Gaussian if every counted one were composited; it only
    # falls, so the stop excludes exactly the suffix where it is < T_STOP.
    after = np.cumprod(np.where(counted, 1.0 - alpha, 1.0), axis=1)
    used = counted & (after >= ALPHA_T_STOP)
    a = np.where(used, alpha, 0.0)
    before = np.concatenate([np.ones_like(a[:, :1]), np.cumprod(1.0 - a, axis=1)[:, :-1]], axis=1)
    t_final = np.prod(1.0 - a, axis=1)  # [P]
    return order, (m, q, col, o), (dx, dy, w, raw, a, used, before, t_final)


def render_alpha(means, conics, colors, opacities, depths, height, width, background=(0.0, 0.0, 0.0)):
    """The alpha-composited image: [height, width, 3] float64."""
    _, (_, _, col, _), (_, _, _, _, a, _, before, t_final) = _alpha_pieces(
        means, conics, colors, opacities, depths, height, width
    )
    bg = np.asarray(background, np.float64)
    return ((before * a) @ col + t_final[:, None] * bg[None, :]).reshape(height, width, 3)


def render_alpha_loop(means, conics, colors, opacities, depths, height, width, background=(0.0, 0.0, 0.0)):
    """The same function as ``render_alpha``, one pixel and one Gaussian at a time.

    A literal transcription of the rule (slow: for tiny cases), which checks
    the vectorised oracle's reading of the stop rule.
    """
    arrays = (means, conics, colors, opacities, depths)
    means, conics, colors, opacities, depths = (np.asarray(v, np.float64) for v in arrays)
    order = _alpha_order(means, conics, colors, opacities, depths)
    out = np.zeros((height, width, 3))
    for i in range(height):
        for j in range(width):
            px, py = j + 0.5, i + 0.5
            t = 1.0
            for n in order:
                a, b, c = conics[n]
                dx, dy = px - means[n, 0], py - means[n, 1]
                s = 0.5 * a * dx * dx + b * dx * dy + 0.5 * c * dy * dy
                alpha = min(ALPHA_MAX, opacities[n] * (math.exp(-s) if s <= S_MAX else 0.0))
                if alpha < ALPHA_MIN:
                    continue
                if t * (1.0 - alpha) < ALPHA_T_STOP:
                    break
                out[i, j] += t * alpha * colors[n]
                t *= 1.0 - alpha
            out[i, j] += t * np.asarray(background, np.float64)
    return out


def render_alpha_vjp(means, conics, colors, opacities, depths, height, width, cotangent, background=(0,) * 3):
    """Gradients of sum(cotangent * I) for the alpha model (float64).

    Returns (means [N, 2], conics [N, 3], colors [N, 3], opacities [N],
    depths [N] (zero: the image is piecewise constant in depth), background [3]).
    With the discrete choices (order, counted, stop, clamp) fixed,
    dI/dalpha_n = T_n c_n - (sum_{m>n} T_m alpha_m c_m + T_final bg) / (1 - alpha_n).
    """
    n = np.asarray(means).shape[0]
    order, (m, q, col, o), (dx, dy, w, raw, a, used, before, t_final) = _alpha_pieces(
        means, conics, colors, opacities, depths, height, width
    )
    g = np.asarray(cotangent, np.float64).reshape(-1, 3)  # [P, 3]
    bg = np.asarray(background, np.float64)
    v = before * a  # [P, K] weight of each Gaussian's colour
    gq = g @ col.T  # [P, K] cotangent . colour
    tail = t_final * (g @ bg)  # [P]
    # Sum over later Gaussians (exclusive suffix sum) plus the background term.
    vq = v * gq
    later = np.cumsum(vq[:, ::-1], axis=1)[:, ::-1] - vq + tail[:, None]
    d_alpha = np.where(used, before * gq - later / (1.0 - a), 0.0)
    d_raw = np.where(raw < ALPHA_MAX, d_alpha, 0.0)  # the 0.99 clamp passes no gradient
    d_s = -d_raw * raw  # d(o e^-s)/ds = -o e^-s
    a_, b_, c_ = q[:, 0], q[:, 1], q[:, 2]
    out_means, out_conics, out_colors = np.zeros((n, 2)), np.zeros((n, 3)), np.zeros((n, 3))
    out_opac = np.zeros(n)
    out_colors[order] = v.T @ g
    out_opac[order] = (d_raw * w).sum(0)
    out_means[order] = np.stack(
        [-(d_s * (a_ * dx + b_ * dy)).sum(0), -(d_s * (b_ * dx + c_ * dy)).sum(0)], axis=1
    )
    out_conics[order] = np.stack(
        [(d_s * 0.5 * dx * dx).sum(0), (d_s * dx * dy).sum(0), (d_s * 0.5 * dy * dy).sum(0)], axis=1
    )
    d_bg = (g * t_final[:, None]).sum(0)
    return out_means, out_conics, out_colors, out_opac, np.zeros(n), d_bg

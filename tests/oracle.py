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

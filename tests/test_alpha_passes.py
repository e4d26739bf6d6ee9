"""The alpha model in many passes (render/alpha_passes.py) vs the independent float64 oracle.

Small capacities force dozens to hundreds of windows, so T is carried across
window boundaries at nearly every pixel, pixels stop in the middle of a
window and at its first pair, and finished images of a batch run empty
windows. Tolerance as in test_render_alpha.py (relative L2 error 1e-5 for
float32 against float64; measured ~1e-7 .. 2e-6): carrying T adds one
float32 product per window boundary, and the backward's division by a
window's factor (each factor of it >= 0.01) adds one rounding per window.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import oracle
import pytest

from gauss2d.gaussians import ProjectedAlpha
from gauss2d.render import alpha_common, render, render_with_stats

TOL_F32 = 1e-5
BG = np.asarray([0.2, 0.5, 0.9], np.float32)
H, W = 21, 29
NAMES = ("means", "conics", "colors", "opacities", "depths", "background")


def case(n, seed, opacity=(0.3, 1.0), depth_levels=None, **kw):
    rng = np.random.default_rng(seed)
    m, q, c = oracle.random_gaussians(rng, n, H, W, **kw)
    o = rng.uniform(*opacity, size=n).astype(np.float32)
    z = rng.integers(0, depth_levels, n) if depth_levels else rng.normal(size=n)
    return m, q, c, o, z.astype(np.float32)


def assert_grads_match(grads, ref):
    for name, g, r in zip(NAMES, grads, ref, strict=True):
        assert np.all(np.isfinite(g)), name
        if name == "depths":
            assert np.all(np.asarray(g) == 0), name  # piecewise constant in depth
        else:
            assert oracle.rel_err(g, r) <= TOL_F32, name


def loss_at(capacity, cot):
    def loss(m, q, c, o, z, bg):
        image, _ = render_with_stats(ProjectedAlpha(m, q, c, o, z), H, W, background=bg, capacity=capacity)
        return jnp.sum(cot * image)

    return loss


# 7 pairs a window: ~100 windows; 61: ~13; 4096: one.
@pytest.mark.parametrize("capacity", [7, 61, 4096])
def test_forward_and_gradients_match_the_oracle_at_any_capacity_under_jit(capacity):
    args = case(150, seed=1, max_scale=12.0)
    cot = np.random.default_rng(2).normal(size=(H, W, 3)).astype(np.float32)
    f = jax.jit(
        lambda *a: render_with_stats(ProjectedAlpha(*a[:5]), H, W, background=a[5], capacity=capacity)
    )
    image, stats = f(*args, BG)
    assert bool(stats.overflow) == (int(stats.num_pairs) > capacity)
    assert oracle.rel_err(image, oracle.render_alpha(*args, H, W, BG)) <= TOL_F32
    grads = jax.jit(jax.grad(loss_at(capacity, cot), argnums=range(6)))(*args, BG)
    assert_grads_match(grads, oracle.render_alpha_vjp(*args, H, W, cot, BG))


def test_opaque_stacks_stop_across_window_boundaries():
    # Near-opaque Gaussians: most pixels reach the stop, at pairs spread over
    # many windows of 5 pairs (a stop at a window's first pair included).
    args = case(300, seed=3, opacity=(0.9, 1.0), min_scale=3.0, max_scale=10.0)
    pieces = oracle._alpha_pieces(*args, H, W)[2]
    counted = (np.minimum(0.99, pieces[3]) >= 1 / 255).sum(1)
    assert (counted > pieces[5].sum(1)).mean() > 0.5  # most pixels stop
    assert pieces[-1].min() >= alpha_common.ALPHA_T_STOP
    cot = np.random.default_rng(4).normal(size=(H, W, 3)).astype(np.float32)
    image, stats = render_with_stats(ProjectedAlpha(*args), H, W, background=BG, capacity=5)
    assert int(stats.num_pairs) > 50 * 5
    assert oracle.rel_err(image, oracle.render_alpha(*args, H, W, BG)) <= TOL_F32
    grads = jax.grad(loss_at(5, cot), argnums=range(6))(*args, BG)
    assert_grads_match(grads, oracle.render_alpha_vjp(*args, H, W, cot, BG))


def test_ties_in_depth_keep_index_order_across_windows():
    args = case(200, seed=5, depth_levels=3, max_scale=10.0)
    cot = np.random.default_rng(6).normal(size=(H, W, 3)).astype(np.float32)
    image = render(ProjectedAlpha(*args), H, W, background=BG, capacity=11)
    assert oracle.rel_err(image, oracle.render_alpha(*args, H, W, BG)) <= TOL_F32
    grads = jax.grad(loss_at(11, cot), argnums=range(6))(*args, BG)
    assert_grads_match(grads, oracle.render_alpha_vjp(*args, H, W, cot, BG))


def render_16(m, q, c, o, z):
    return render(ProjectedAlpha(m, q, c, o, z), H, W, background=BG, capacity=16)


def test_vmap_of_grad_with_different_pass_counts_per_image():
    # Image 0 needs many windows, image 1 a few, image 2 has no pair at all:
    # the batch runs in step and finished images run empty windows.
    cases = [
        case(60, seed=7, max_scale=10.0),
        case(60, seed=8, max_scale=1.0),
        case(60, seed=9, max_scale=3.0),
    ]
    cases[2][0][:] += np.float32(10 * W)  # all off-image: the background only
    stacked = [np.stack(parts) for parts in zip(*cases, strict=True)]
    cots = np.random.default_rng(10).normal(size=(3, H, W, 3)).astype(np.float32)
    images = jax.jit(jax.vmap(render_16))(*stacked)
    stats = jax.vmap(lambda *a: render_with_stats(ProjectedAlpha(*a), H, W, capacity=16)[1])(*stacked)
    windows = -(-np.asarray(stats.num_pairs) // 16)
    assert windows[0] > 3 * windows[1] > 0 and stats.num_pairs[2] == 0
    g = jax.jit(jax.vmap(jax.grad(lambda *a: jnp.sum(a[-1] * render_16(*a[:-1])), argnums=range(5))))
    grads = g(*stacked, cots)
    for i, args in enumerate(cases):
        assert oracle.rel_err(images[i], oracle.render_alpha(*args, H, W, BG)) <= TOL_F32
        ref = oracle.render_alpha_vjp(*args, H, W, cots[i], BG)
        for name, gi, r in zip(NAMES[:5], (x[i] for x in grads), ref, strict=False):
            if name == "depths" or not np.any(r):
                assert np.all(np.asarray(gi) == 0), (i, name)
            else:
                assert oracle.rel_err(gi, r) <= TOL_F32, (i, name)
    np.testing.assert_array_equal(np.asarray(images[2]), np.broadcast_to(BG, (H, W, 3)))


def test_the_guessed_capacity_under_jit_is_exact_with_no_dense_fallback():
    # Every Gaussian covers every tile: far more pairs than the ~4 per
    # Gaussian guessed under jit, so the render takes several passes.
    args = case(50, seed=11, min_scale=40.0, max_scale=100.0)
    cot = np.random.default_rng(12).normal(size=(H, W, 3)).astype(np.float32)
    out = jax.jit(lambda *a: render(ProjectedAlpha(*a[:5]), H, W, background=a[5]))(*args, BG)
    assert oracle.rel_err(out, oracle.render_alpha(*args, H, W, BG)) <= TOL_F32
    loss = lambda *a: jnp.sum(cot * render(ProjectedAlpha(*a[:5]), H, W, background=a[5]))  # noqa: E731
    grads = jax.jit(jax.grad(loss, argnums=range(6)))(*args, BG)
    assert_grads_match(grads, oracle.render_alpha_vjp(*args, H, W, cot, BG))
    # No dense program hides in the jitted render: no [pixels, N] temporary.
    text = jax.jit(lambda *a: render(ProjectedAlpha(*a), H, W)).lower(*args).as_text()
    assert f"{H * W}x{50}x" not in text and f"x{H * W}x{50}" not in text


def test_one_pass_and_many_passes_give_the_same_image():
    args = case(150, seed=13, max_scale=12.0)
    one = render(ProjectedAlpha(*args), H, W, background=BG, capacity=1 << 14)
    many = render(ProjectedAlpha(*args), H, W, background=BG, capacity=9)
    assert oracle.rel_err(many, one) <= 1e-6

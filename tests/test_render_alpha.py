"""The alpha-composited renderers vs the independent float64 oracle (tests/oracle.py).

Tolerances (relative L2 error, ||x - ref|| / ||ref||), as in test_render.py:
  float32 tiled backend vs float64 oracle: 1e-5. Measured 1e-9 .. 1e-6 for
    forward and gradients: T is a product of at most a few hundred float32
    factors per pixel (~1e-7 each), and the discrete choices (1/255
    threshold, stop, clamp) have margins far above rounding (alpha_common).
  reference backend in float64 vs oracle: 1e-12 forward, 1e-10 gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import oracle
import pytest

from gauss2d.gaussians import ProjectedAlpha
from gauss2d.render import alpha_common, capacity, pair_capacity, render, render_with_stats

TOL_F32 = 1e-5
TOL_F64 = 1e-12
BG = np.asarray([0.2, 0.5, 0.9], np.float32)


def render_alpha(means, conics, colors, opacities, depths, height, width, **kw):
    """The entry on the alpha model's projected form (what every test below renders)."""
    return render(ProjectedAlpha(means, conics, colors, opacities, depths), height, width, **kw)


def case(n, height, width, seed=0, depth_levels=None, opacity=(0.05, 1.0), **kw):
    """Random Gaussians plus opacities [N] and depths [N] (integer levels give ties)."""
    rng = np.random.default_rng(seed)
    m, q, c = oracle.random_gaussians(rng, n, height, width, **kw)
    o = rng.uniform(*opacity, size=n).astype(np.float32)
    z = rng.integers(0, depth_levels, n) if depth_levels else rng.normal(size=n)
    return m, q, c, o, z.astype(np.float32)


def grads_vs_oracle(args, h, w, seed):
    cot = np.random.default_rng(seed).normal(size=(h, w, 3)).astype(np.float32)
    loss = lambda *a: jnp.sum(cot * render_alpha(*a[:5], h, w, background=a[5]))
    grads = jax.grad(loss, argnums=range(6))(*args, BG)
    ref = oracle.render_alpha_vjp(*args, h, w, cot, BG)
    return grads, ref


def test_oracle_matches_its_literal_per_pixel_loop():
    # Ties, a clamped opaque stack that hits the stop, and ordinary Gaussians.
    h, w = 9, 11
    m, q, c, o, z = case(12, h, w, seed=1, depth_levels=3, min_scale=1.0, max_scale=8.0)
    stack = case(5, h, w, seed=2, opacity=(0.995, 0.999), min_scale=4.0, max_scale=6.0)
    stack[0][:] = [5.0, 4.0]
    m, q, c, o, z = (np.concatenate(parts) for parts in zip((m, q, c, o, z), stack))
    vec = oracle.render_alpha(m, q, c, o, z, h, w, BG)
    loop = oracle.render_alpha_loop(m, q, c, o, z, h, w, BG)
    assert oracle.rel_err(vec, loop) <= 1e-14


def test_stop_rule_on_a_clamped_stack_by_hand():
    # Three clamped (alpha = 0.99) Gaussians over the pixel at (2.5, 2.5): after
    # two, T = 0.01^2 = 1e-4 exactly, which is not below 1e-4, so the second
    # counts; the third would take T to 1e-6 and is not counted: the pixel stops.
    h = w = 5
    m = np.full((3, 2), 2.5, np.float32)
    q = np.tile(np.asarray([[0.01, 0.0, 0.01]], np.float32), (3, 1))  # s ~ 0 near the centre
    c = np.asarray([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    o = np.full(3, 0.9999, np.float32)
    z = np.asarray([2.0, 1.0, 0.0], np.float32)  # blue in front, then green, then red
    expected = 0.99 * c[2] + 0.01 * 0.99 * c[1] + 1e-4 * BG
    for out in (
        render_alpha(m, q, c, o, z, h, w, background=BG),
        oracle.render_alpha(m, q, c, o, z, h, w, BG),
    ):
        np.testing.assert_allclose(np.asarray(out)[2, 2], expected, rtol=1e-5, atol=1e-7)


# Sizes that are not tile multiples (and one that is), N in {1, few, many}.
@pytest.mark.parametrize("h,w,n", [(37, 61, 1), (37, 61, 7), (37, 61, 3000), (16, 16, 7), (50, 33, 300)])
def test_xla_forward_matches_oracle(h, w, n):
    m, q, c, o, z = case(n, h, w, seed=n + h, max_scale=30.0)
    out = render_alpha(m, q, c, o, z, h, w, background=BG)
    assert out.shape == (h, w, 3) and out.dtype == jnp.float32
    assert oracle.rel_err(out, oracle.render_alpha(m, q, c, o, z, h, w, BG)) <= TOL_F32


@pytest.mark.parametrize("n", [1, 7, 3000])
def test_xla_gradients_match_oracle_under_random_cotangent(n):
    h, w = 37, 61
    args = case(n, h, w, seed=10 + n, max_scale=30.0)
    grads, ref = grads_vs_oracle(args, h, w, seed=n)
    for name, g, r in zip(("means", "conics", "colors", "opacities", "depths", "background"), grads, ref):
        assert np.all(np.isfinite(g)), name
        if name == "depths":
            assert np.all(np.asarray(g) == 0)  # piecewise constant in depth
        else:
            assert oracle.rel_err(g, r) <= TOL_F32, name


def test_ties_in_depth_follow_index_order():
    h, w = 37, 61
    args = case(400, h, w, seed=21, depth_levels=3, max_scale=20.0)  # ~133 Gaussians per depth
    ref = oracle.render_alpha(*args, h, w, BG)
    assert oracle.rel_err(render_alpha(*args, h, w, background=BG), ref) <= TOL_F32
    grads, ref_grads = grads_vs_oracle(args, h, w, seed=21)
    for g, r in list(zip(grads, ref_grads))[:4]:
        assert oracle.rel_err(g, r) <= TOL_F32
    # All depths equal: index order. Reversing the index order changes the image.
    m, q, c, o, _ = args
    flat = np.zeros_like(o)
    same = render_alpha(m, q, c, o, flat, h, w, background=BG)
    assert oracle.rel_err(same, oracle.render_alpha(m, q, c, o, flat, h, w, BG)) <= TOL_F32
    flipped = render_alpha(m[::-1], q[::-1], c[::-1], o[::-1], flat, h, w, background=BG)
    assert oracle.rel_err(flipped, same) > 1e-2


def test_opaque_stacks_hit_the_stop_forward_and_gradient():
    h, w = 37, 61
    args = case(600, h, w, seed=31, opacity=(0.9, 1.0), min_scale=3.0, max_scale=12.0)
    # Most pixels see enough near-opaque Gaussians for T to reach the stop.
    pieces = oracle._alpha_pieces(*args, h, w)[2]
    t_final, used = pieces[-1], pieces[5]
    counted = (np.minimum(0.99, pieces[3]) >= 1 / 255).sum(1)
    stopped = counted > used.sum(1)
    assert stopped.mean() > 0.5 and t_final.min() >= alpha_common.ALPHA_T_STOP
    assert (
        oracle.rel_err(render_alpha(*args, h, w, background=BG), oracle.render_alpha(*args, h, w, BG))
        <= TOL_F32
    )
    grads, ref = grads_vs_oracle(args, h, w, seed=31)
    for g, r in list(zip(grads, ref))[:4] + [(grads[5], ref[5])]:
        assert oracle.rel_err(g, r) <= TOL_F32


def test_off_image_gaussians_leave_the_background():
    h, w = 37, 61
    m, q, c, o, z = case(20, h, w, seed=41, max_scale=5.0)
    m[:] += np.float32(5 * w)
    out = render_alpha(m, q, c, o, z, h, w, background=BG)
    assert np.all(np.asarray(out) == BG)
    grads = jax.grad(lambda *a: jnp.sum(render_alpha(*a, z, h, w, background=BG) ** 2), argnums=range(4))(
        m, q, c, o
    )
    assert all(np.all(np.asarray(g) == 0) for g in grads)


def test_degenerate_gaussians_contribute_nothing_and_give_no_nan():
    h, w = 37, 61
    good = case(7, h, w, seed=51, max_scale=20.0)
    bad_m = np.array([[10, 10], [20, 20], [30, 15], [np.nan, 5], [5, 5], [12, 12], [14, 14]], np.float32)
    bad_q = np.array(
        [[0, 0, 0], [1, 1, 1], [-1, 0, 1], [1, 0, 1], [np.inf, 0, 1], [1, 0, 1], [1, 0, 1]], np.float32
    )
    bad_c = np.ones((7, 3), np.float32)
    bad_o = np.array([0.5, 0.5, 0.5, 0.5, 0.5, np.nan, 0.5], np.float32)
    bad_z = np.array([0, 0, 0, 0, 0, 0, np.inf], np.float32)  # zero, singular, not PD, NaN, inf, NaN o, inf z
    allx = [np.concatenate([g, b]) for g, b in zip(good, (bad_m, bad_q, bad_c, bad_o, bad_z))]
    ref = oracle.render_alpha(*good, h, w, BG)
    for backend in ("xla", "reference"):
        out = render_alpha(*allx, h, w, background=BG, backend=backend)
        assert np.all(np.isfinite(out))
        assert oracle.rel_err(out, ref) <= TOL_F32
    grads = jax.grad(lambda *a: jnp.sum(render_alpha(*a, h, w, background=BG) ** 2), argnums=range(5))(*allx)
    for g in grads:
        assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[7:] == 0)


def test_reference_float64_matches_oracle_forward_and_grad():
    h, w = 37, 61
    args = [x.astype(np.float64) for x in case(300, h, w, seed=61, depth_levels=5, max_scale=30.0)]
    cot = np.random.default_rng(61).normal(size=(h, w, 3))
    bg = BG.astype(np.float64)
    with jax.enable_x64(True):
        fn = lambda *a: render_alpha(*a[:5], h, w, background=a[5], backend="reference", chunk_elements=4096)
        out = fn(*args, bg)
        assert out.dtype == jnp.float64
        grads = jax.grad(lambda *a: jnp.sum(cot * fn(*a)), argnums=range(6))(*args, bg)
    assert oracle.rel_err(out, oracle.render_alpha(*args, h, w, bg)) <= TOL_F64
    for g, r in zip(grads, oracle.render_alpha_vjp(*args, h, w, cot, bg)):
        assert oracle.rel_err(g, r) <= 1e-10 if np.any(r) else np.all(np.asarray(g) == 0)


def test_overflow_is_flagged_and_the_image_stays_exact():
    h, w = 37, 61
    args = case(300, h, w, seed=71, min_scale=3.0, max_scale=30.0)
    ref = oracle.render_alpha(*args, h, w, BG)
    # Before issue 22 the pairs past capacity were dropped (a wrong image, only
    # the flag said so); now they are composited in further passes.
    small, stats = render_with_stats(ProjectedAlpha(*args), h, w, background=BG, backend="xla", capacity=256)
    assert bool(stats.overflow) and int(stats.num_pairs) > 256
    assert oracle.rel_err(small, ref) <= TOL_F32
    cap = pair_capacity(ProjectedAlpha(*args), h, w, backend="xla")
    assert cap == capacity.capacity_bucket(int(stats.num_pairs))
    full, stats2 = render_with_stats(ProjectedAlpha(*args), h, w, background=BG, backend="xla", capacity=cap)
    assert not bool(stats2.overflow)
    assert oracle.rel_err(full, ref) <= TOL_F32


def test_jitted_render_is_exact_when_guessed_capacity_overflows():
    h, w = 37, 61
    args = case(50, h, w, seed=81, min_scale=40.0, max_scale=100.0)  # every Gaussian covers every tile
    out = jax.jit(lambda *a: render_alpha(*a, h, w, background=BG))(*args)
    assert oracle.rel_err(out, oracle.render_alpha(*args, h, w, BG)) <= TOL_F32


def test_result_does_not_depend_on_tile_size():
    h, w = 37, 61
    args = case(200, h, w, seed=91, max_scale=30.0)
    assert oracle.rel_err(render_alpha(*args, h, w, tile=16), render_alpha(*args, h, w)) <= 1e-6


def test_vmap_over_images():
    h, w = 37, 61
    batch = [case(100, h, w, seed=100 + i, max_scale=30.0) for i in range(3)]
    stacked = [np.stack(parts) for parts in zip(*batch)]
    out = jax.vmap(lambda *a: render_alpha(*a, h, w, background=BG))(*stacked)
    for i in range(3):
        assert oracle.rel_err(out[i], oracle.render_alpha(*batch[i], h, w, BG)) <= TOL_F32


def test_bad_arguments_name_the_problem():
    m, q, c, o, z = case(3, 8, 8)
    with pytest.raises(ValueError, match="unknown render backend 'nope'"):
        render_alpha(m, q, c, o, z, 8, 8, backend="nope")
    with pytest.raises(ValueError, match="opacities"):
        render_alpha(m, q, c, o[:2], z, 8, 8)
    with pytest.raises(ValueError, match="background"):
        render_alpha(m, q, c, o, z, 8, 8, background=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="height=0"):
        render_alpha(m, q, c, o, z, 0, 8)

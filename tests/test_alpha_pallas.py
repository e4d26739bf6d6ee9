"""The alpha model's pallas backend vs the float64 oracle (tests/oracle.py) and the xla alpha backend.

On CPU the kernels run in Pallas interpret mode (chosen automatically); on
a GPU the same tests run compiled. Compilation dominates (the kernels unroll
``chunk`` pairs per loop step), so most cases share one image size (37 x 61:
3 x 4 tiles of 16, neither side a multiple), one Gaussian count (cases are
padded with zero, i.e. degenerate, Gaussians) and one jitted forward +
gradient.

Tolerances: relative L2 error ||x - ref|| / ||ref||, one table (TOL below).
  vs the float64 oracle  1e-5  as tests/test_render_alpha.py for the xla alpha
                               backend: T is a product of at most a few hundred
                               float32 factors per pixel, the discrete choices
                               have margins far above rounding (alpha_common);
                               measured here: forward <= 2.4e-7, gradients
                               <= 5.1e-6 (N = 1: near-cancelling mean
                               gradients; the xla backend is as far there)
  vs the xla alpha backend 5e-6  same float32 formula, different association
                               (the xla backend's T is a doubling scan, this
                               kernel's a left-to-right product; its backward
                               recovers T by division); measured: forward
                               <= 8.2e-8, gradients <= 4.9e-7
  kernel knobs (tile, chunk) 1e-6  the same per-pixel order; only the tiling of
                               the gradient's per-pixel sums changes
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import oracle
import pytest
from test_pallas import TRITON, export_text, walk_pallas_calls
from test_render_alpha import BG, case, render_alpha

from gauss2d.gaussians import ProjectedAlpha
from gauss2d.render import alpha_common, capacity, pair_capacity, render_with_stats
from gauss2d.render.kernels import PallasConfig
from gauss2d.render.kernels import alpha as alpha_pallas

TOL = {"oracle": 1e-5, "xla": 5e-6, "knobs": 1e-6}
H, W = 37, 61  # 3 x 4 tiles of 16
N_PAD = 640  # every shared-shape case is padded to this many Gaussians
CAPACITY = 8192  # >= 640 Gaussians x 12 tiles: never overflows at (H, W)
NAMES = ("means", "conics", "colors", "opacities", "depths", "background")


def pad(m, q, c, o, z, n=N_PAD):
    """Appends zero (degenerate: contributes nothing) Gaussians up to n."""
    extra = n - m.shape[0]
    assert extra >= 0
    zeros = lambda *shape: np.zeros((extra, *shape), np.float32)
    return tuple(np.concatenate([x, zeros(*x.shape[1:])]) for x in (m, q, c, o, z))


def cotangent(seed, shape=(H, W, 3)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@functools.cache
def runner(backend: str):
    """Jitted (m, q, c, o, z, bg, cot) -> (image, stats, grads of sum(cot * image)); compiled once."""

    def run(m, q, c, o, z, bg, cot):
        def loss(*args):
            image, stats = render_with_stats(
                ProjectedAlpha(*args[:5]), H, W, background=args[5], backend=backend, capacity=CAPACITY
            )
            return jnp.sum(cot * image), (image, stats)

        grads, (image, stats) = jax.grad(loss, argnums=range(6), has_aux=True)(m, q, c, o, z, bg)
        return image, stats, grads

    return jax.jit(run)


def check_against_oracle(args, seed, *, against_xla=False):
    """Runs the pallas backend on ``args`` (padded), asserts against the oracle; returns its outputs."""
    cot = cotangent(seed)
    image, stats, grads = runner("pallas")(*args, BG, cot)
    assert not bool(stats.overflow)
    assert oracle.rel_err(image, oracle.render_alpha(*args, H, W, BG)) <= TOL["oracle"]
    for name, g, r in zip(NAMES, grads, oracle.render_alpha_vjp(*args, H, W, cot, BG), strict=True):
        assert np.all(np.isfinite(g)), name
        if name == "depths":
            assert np.all(np.asarray(g) == 0)  # the image is piecewise constant in depth
        else:
            assert oracle.rel_err(g, r) <= TOL["oracle"], name
    if against_xla:
        xla_image, xla_stats, xla_grads = runner("xla")(*args, BG, cot)
        assert not bool(xla_stats.overflow)  # its 8 x 8 tiles need more pairs than these 16 x 16
        assert oracle.rel_err(image, xla_image) <= TOL["xla"]
        for name, g, r in zip(NAMES, grads, xla_grads, strict=True):
            assert oracle.rel_err(g, r) <= TOL["xla"] if np.any(r) else np.all(np.asarray(g) == 0), name
    return np.asarray(image), [np.asarray(g) for g in grads]


@pytest.mark.parametrize("n", [1, 7, 300])
def test_forward_and_gradients_match_oracle_and_xla(n):
    image, grads = check_against_oracle(pad(*case(n, H, W, seed=n, max_scale=30.0)), seed=n, against_xla=True)
    for name, g in zip(NAMES[:4], grads, strict=False):
        assert np.all(g[n:] == 0), name  # padding Gaussians receive no gradient


def test_ties_in_depth_follow_index_order():
    args = pad(*case(400, H, W, seed=21, depth_levels=3, max_scale=20.0))  # ~133 Gaussians per depth
    levels_image, _ = check_against_oracle(args, seed=21)
    m, q, c, o, _ = args
    flat = np.zeros_like(o)  # all depths equal: index order
    flat_image, _ = check_against_oracle((m, q, c, o, flat), seed=22)
    # The order changes the image, so both oracle checks above were order-sensitive.
    assert np.abs(levels_image - flat_image).max() > 1e-3


def test_opaque_stacks_hit_the_stop():
    args = pad(*case(600, H, W, seed=31, opacity=(0.9, 1.0), min_scale=3.0, max_scale=12.0))
    # Most pixels see enough near-opaque Gaussians for T to reach the stop.
    pieces = oracle._alpha_pieces(*args, H, W)[2]
    t_final, used = pieces[-1], pieces[5]
    stopped = (np.minimum(0.99, pieces[3]) >= 1 / 255).sum(1) > used.sum(1)
    assert stopped.mean() > 0.5 and t_final.min() >= alpha_common.ALPHA_T_STOP
    check_against_oracle(args, seed=31)


def test_a_clamped_front_stack_hides_everything_behind_it():
    # Three clamped (alpha = 0.99 everywhere) Gaussians in front of every
    # pixel: after two, T = 0.01^2 = 1e-4, not below 1e-4, so the second
    # counts; the third would take T below it: every pixel stops there. The
    # forward loop ends early in every tile, the backward starts at the
    # second pair of each tile, and the Gaussians behind get exactly zero.
    front_m = np.tile(np.asarray([[W / 2, H / 2]], np.float32), (3, 1))
    front_q = np.tile(np.asarray([[1e-7, 0.0, 1e-7]], np.float32), (3, 1))  # s < 1e-4 on the image
    front_c = np.asarray([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    front_o = np.full(3, 0.9999, np.float32)
    front_z = np.asarray([-3.0, -4.0, -5.0], np.float32)  # blue first, then green, then red
    behind = case(200, H, W, seed=41, max_scale=20.0)
    behind[4][:] = np.abs(behind[4])  # depths >= 0: behind the stack
    front = (front_m, front_q, front_c, front_o, front_z)
    args = pad(*(np.concatenate(parts) for parts in zip(front, behind)))
    image, grads = check_against_oracle(args, seed=41)
    expected = 0.99 * front_c[2] + 0.01 * 0.99 * front_c[1] + 1e-4 * BG
    np.testing.assert_allclose(image, np.broadcast_to(expected, image.shape), rtol=1e-5, atol=1e-7)
    for name, g in zip(NAMES[:4], grads, strict=False):
        assert np.all(g[3:] == 0), name  # hidden, then padding
    assert np.all(grads[2][1:3] != 0)  # the two composited colours matter
    assert np.all(grads[2][0] == 0)  # the stopped one does not


def test_off_image_and_degenerate_gaussians():
    good = case(7, H, W, seed=51, max_scale=20.0)
    far = case(20, H, W, seed=52, max_scale=5.0)
    far[0][:] += np.float32(5 * W)  # entirely off-image
    bad_m = np.array([[10, 10], [20, 20], [30, 15], [np.nan, 5], [5, 5], [12, 12], [14, 14]], np.float32)
    bad_q = np.array(
        [[0, 0, 0], [1, 1, 1], [-1, 0, 1], [1, 0, 1], [np.inf, 0, 1], [1, 0, 1], [1, 0, 1]], np.float32
    )
    bad_o = np.array([0.5, 0.5, 0.5, 0.5, 0.5, np.nan, 0.5], np.float32)
    bad_z = np.array([0, 0, 0, 0, 0, 0, np.inf], np.float32)  # zero, singular, not PD, NaN, inf, NaN o, inf z
    bad = (bad_m, bad_q, np.ones((7, 3), np.float32), bad_o, bad_z)
    args = pad(*(np.concatenate(parts) for parts in zip(good, far, bad)))
    image, grads = check_against_oracle(args, seed=51)
    assert np.all(np.isfinite(image))
    for name, g in zip(NAMES[:4], grads, strict=False):
        assert np.all(g[7:] == 0), name  # off-image, degenerate and padding Gaussians: no gradient
    only_far = pad(*far)
    image, _, _ = runner("pallas")(*only_far, BG, cotangent(52))
    assert np.all(np.asarray(image) == BG)


def test_vmap_over_a_batch_of_images_is_a_grid_axis():
    batch = [pad(*case(n, H, W, seed=60 + n, depth_levels=4, max_scale=30.0), n=128) for n in (50, 120, 3)]
    stacked = [np.stack(parts) for parts in zip(*batch)]
    cot = cotangent(60, (3, H, W, 3))

    def one(m, q, c, o, z, cot):
        def loss(*args):
            image, stats = alpha_pallas.render_alpha_tiled_pallas(*args, H, W, background=BG, capacity=2048)
            return jnp.sum(cot * image), (image, stats.overflow)

        return jax.grad(loss, argnums=range(4), has_aux=True)(m, q, c, o, z)

    batched = jax.vmap(one)
    grids = {
        e.params["name"]: e.params["grid_mapping"].grid
        for e in walk_pallas_calls(jax.make_jaxpr(batched)(*stacked, cot).jaxpr)
    }
    assert grids == {alpha_pallas.FORWARD_NAME: (3, 12), alpha_pallas.BACKWARD_NAME: (3, 12)}
    grads, (images, overflow) = jax.jit(batched)(*stacked, cot)
    assert not np.any(overflow)
    for i, args in enumerate(batch):
        assert oracle.rel_err(images[i], oracle.render_alpha(*args, H, W, BG)) <= TOL["oracle"]
        refs = oracle.render_alpha_vjp(*args, H, W, cot[i], BG)
        for name, g, r in zip(NAMES, grads, refs[:4], strict=False):
            assert oracle.rel_err(g[i], r) <= TOL["oracle"], (i, name)


def test_result_does_not_depend_on_kernel_knobs():
    args = pad(*case(300, H, W, seed=70, max_scale=30.0))
    default = runner("pallas")(*args, BG, cotangent(70))[0]
    config = PallasConfig(tile=8, chunk=2)
    other = render_alpha(*args, H, W, background=BG, backend="pallas", config=config)
    assert oracle.rel_err(other, default) <= TOL["knobs"]


def test_overflow_is_flagged_and_the_image_stays_exact():
    args = case(300, H, W, seed=71, min_scale=3.0, max_scale=30.0)
    ref = oracle.render_alpha(*args, H, W, BG)
    # The kernels' own single pass drops the pairs past the buffer ...
    one_pass, _ = alpha_pallas.render_alpha_tiled_pallas(*args, H, W, background=BG, capacity=256)
    assert oracle.rel_err(one_pass, ref) > 1e-3
    # ... so the backend renders such inputs with the xla pass loop instead (exact).
    small, stats = render_with_stats(
        ProjectedAlpha(*args), H, W, background=BG, backend="pallas", capacity=256
    )
    needed = capacity.count_pairs(*(jnp.asarray(x) for x in args[:3]), H, W, 16)
    assert bool(stats.overflow) and int(stats.num_pairs) == int(needed) > 256
    assert oracle.rel_err(small, ref) <= TOL["oracle"]
    cap = pair_capacity(ProjectedAlpha(*args), H, W, backend="pallas")
    assert cap == capacity.capacity_bucket(int(needed))
    # Concrete inputs: sized from the pair count (the kernels run). Under jit:
    # a guessed capacity, and the xla pass loop where it overflows.
    assert oracle.rel_err(render_alpha(*args, H, W, background=BG, backend="pallas"), ref) <= TOL["oracle"]
    wide = case(50, H, W, seed=72, min_scale=40.0, max_scale=100.0)  # every Gaussian covers every tile
    jitted = jax.jit(lambda *a: render_alpha(*a, H, W, background=BG, backend="pallas"))(*wide)
    assert oracle.rel_err(jitted, oracle.render_alpha(*wide, H, W, BG)) <= TOL["oracle"]


def test_kernels_lower_for_cuda_through_triton():
    # As test_pallas's: a CPU host exports the program for cuda (the kernels
    # lower to Triton in Python), which catches Triton-only errors without a
    # GPU; tests/test_gpu_compile.py compiles it to machine code.
    args = pad(*case(30, H, W, seed=80, max_scale=30.0), n=64)
    config = PallasConfig(num_warps=8, num_stages=3)

    def loss(*a):
        image, _ = alpha_pallas.render_alpha_tiled_pallas(
            *a, H, W, background=BG, capacity=1024, config=config
        )
        return jnp.sum(image * image)

    step = jax.value_and_grad(loss, argnums=range(4))

    def single_and_batched(*a):
        return step(*a), jax.vmap(step)(*(jnp.stack([x, x]) for x in a))

    text = export_text(single_and_batched, *args)
    assert text.count(TRITON) == 4  # forward and backward, single and batched
    for name in (alpha_pallas.FORWARD_NAME, alpha_pallas.BACKWARD_NAME):
        assert text.count(f'name = "{name}", num_stages = 3 : i32, num_warps = 8 : i32') == 2, name
    assert text.count("grid_x = 12 : i32, grid_y = 1 : i32") == 2  # one program per tile
    assert text.count("grid_x = 12 : i32, grid_y = 2 : i32") == 2  # the batch as a grid axis
    assert export_text(single_and_batched, *args, platforms=("cpu",)).count(TRITON) == 0  # interpreted

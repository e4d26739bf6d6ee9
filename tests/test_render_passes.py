"""Rendering in passes (gauss2d/render/passes.py) vs the float64 oracle (tests/oracle.py).

Whatever the pair capacity, the tiled render is the exact image: pairs past
the buffer are rendered in further passes and summed. These tests split the
pair list at awkward places (inside a Gaussian's tiles, one pair per pass),
under jit, grad and vmap, and check that no dense fallback is compiled.

Tolerances as tests/test_render.py: forward 1e-5, gradients 2e-5 (relative
L2 error against the oracle), float64 1e-12.
"""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import oracle
import pytest

from gauss2d.gaussians import Projected
from gauss2d.render import (
    call_with_capacity,
    capacity_bucket,
    grow_capacity,
    kernels,
    pair_capacity,
    render,
    render_with_stats,
    tiling,
)

TOL_F32 = 1e-5
TOL_GRAD_F32 = 2e-5
H, W = 37, 61


def case(n, seed, **kw):
    return oracle.random_gaussians(np.random.default_rng(seed), n, H, W, **kw)


def test_bin_window_walks_the_whole_pair_list_once():
    # Windows of 7 pairs over Gaussians of 0..12 tiles: every (tile, Gaussian)
    # pair appears exactly once, in Gaussian order, whatever the window cuts.
    m, q, c = case(40, seed=1, min_scale=1.0, max_scale=20.0)
    valid = jnp.ones(40, bool)
    lo, extent, counts = tiling.tile_ranges(jnp.asarray(m), jnp.asarray(q), valid, H, W, 8)
    tiles_y, tiles_x = tiling.tile_grid(H, W, 8)
    expected = [
        (g, (int(lo[g, 1]) + k // int(extent[g, 0])) * tiles_x + int(lo[g, 0]) + k % int(extent[g, 0]))
        for g in range(40)
        for k in range(int(counts[g]))
    ]
    window, seen, more = tiling.first_window(), [], True
    while more:
        pairs, window, more = tiling.bin_window(lo, extent, counts, window, 7, tiles_x, tiles_y * tiles_x)
        tile_ids, gauss_ids = np.asarray(pairs.tile_ids), np.asarray(pairs.gauss_ids)
        used = tile_ids < tiles_y * tiles_x
        seen += list(zip(gauss_ids[used].tolist(), tile_ids[used].tolist()))
        assert np.all(np.diff(np.asarray(pairs.gauss_ids)) >= 0)  # sorted ids (segment-sum relies on it)
    assert seen == expected and len(expected) > 7 * 5


def test_saturating_cumsum_never_wraps():
    counts = jnp.full((10,), 2**29, jnp.int32)
    ends = tiling.saturating_cumsum(counts)
    assert np.all(np.diff(np.asarray(ends)) >= 0)
    assert int(ends[0]) == 2**29 and int(ends[-1]) == tiling.MAX_PAIRS
    np.testing.assert_array_equal(tiling.saturating_cumsum(jnp.arange(5, dtype=jnp.int32)), [0, 1, 3, 6, 10])


@pytest.mark.parametrize("capacity", [1, 37, 256, 4096])
def test_any_capacity_gives_the_exact_image_and_gradients(capacity):
    m, q, c = case(120, seed=2, min_scale=1.0, max_scale=25.0)
    cot = np.random.default_rng(2).normal(size=(H, W, 3)).astype(np.float32)

    def loss(m, q, c):
        image, stats = render_with_stats(Projected(m, q, c), H, W, capacity=capacity)
        return jnp.sum(cot * image), (image, stats)

    grads, (image, stats) = jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))(m, q, c)
    assert bool(stats.overflow) == (int(stats.num_pairs) > capacity)
    assert oracle.rel_err(image, oracle.render(m, q, c, H, W)) <= TOL_F32
    for name, g, r in zip(("means", "conics", "colors"), grads, oracle.render_vjp(m, q, c, H, W, cot)):
        assert oracle.rel_err(g, r) <= TOL_GRAD_F32, name


def _primitives(jaxpr) -> set[str]:
    """Every primitive name in a (closed) jaxpr, sub-jaxprs included."""
    return {eqn.primitive.name for eqn in _equations(jaxpr)}


def _equations(jaxpr):
    """Every equation of a jaxpr, sub-jaxprs included."""
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from _equations(sub)


def _contracted_sizes(jaxpr) -> set[int]:
    """The sizes of every dimension any dot_general contracts."""
    sizes = set()
    for eqn in _equations(jaxpr):
        if eqn.primitive.name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            sizes |= {eqn.invars[0].aval.shape[d] for d in lhs_contract}
    return sizes


def test_jit_grad_and_vmap_of_the_public_render_compile_no_dense_path():
    # The dense reference is a matmul of [pixels, N] weights by [N, 3]
    # colours: a dot_general contracting over the N Gaussians. The tiled
    # render has none (its backward's one matmul contracts a tile's 64
    # pixels), and no cond (the old overflow switch).
    n = 50
    m, q, c = case(n, seed=3)
    loss = lambda m, q, c: jnp.sum(render(Projected(m, q, c), H, W) ** 2)
    for fn, args in (
        (jax.grad(loss, argnums=(0, 1, 2)), (m, q, c)),
        (
            jax.vmap(lambda m, q, c: render(Projected(m, q, c), H, W)),
            tuple(np.stack([x, x]) for x in (m, q, c)),
        ),
    ):
        jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
        names = _primitives(jaxpr)
        assert "while" in names and "cond" not in names, names
        assert n not in _contracted_sizes(jaxpr)
    # The check can fail: the dense reference contracts over N.
    dense = jax.make_jaxpr(lambda m, q, c: render(Projected(m, q, c), H, W, backend="reference"))(
        m, q, c
    ).jaxpr
    assert n in _contracted_sizes(dense)


def test_vmap_over_images_that_need_different_numbers_of_passes():
    # Image 0 fits the traced guess; image 1 (huge Gaussians) needs many passes.
    small = case(60, seed=4, min_scale=0.5, max_scale=2.0)
    huge = case(60, seed=5, min_scale=40.0, max_scale=100.0)
    m, q, c = (np.stack(parts) for parts in zip(small, huge))
    cot = np.random.default_rng(5).normal(size=(2, H, W, 3)).astype(np.float32)
    loss = lambda m, q, c, g: jnp.sum(g * render(Projected(m, q, c), H, W))
    grads = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1, 2))))(m, q, c, cot)
    images = jax.jit(jax.vmap(lambda m, q, c: render(Projected(m, q, c), H, W)))(m, q, c)
    for k, parts in enumerate((small, huge)):
        assert oracle.rel_err(images[k], oracle.render(*parts, H, W)) <= TOL_F32
        ref = oracle.render_vjp(*parts, H, W, cot[k])
        for g, r in zip(grads, ref):
            assert oracle.rel_err(g[k], r) <= TOL_GRAD_F32


def test_vmap_with_shared_inputs_and_nested_vmap():
    # The pass loop's batching rule (passes.py, custom_vmap) broadcasts
    # unbatched inputs: here the conics and colours are shared by two sets
    # of means, one of which needs many passes. vmap of vmap nests the rule.
    m0, q, c = case(80, seed=8, min_scale=2.0, max_scale=30.0)
    m1 = np.asarray(case(80, seed=9)[0])
    means = np.stack([m0, m1])
    cot = np.random.default_rng(8).normal(size=(2, H, W, 3)).astype(np.float32)
    loss = lambda m, q, c, g: jnp.sum(g * render(Projected(m, q, c), H, W, capacity=64))
    grads = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1, 2)), in_axes=(0, None, None, 0)))(means, q, c, cot)
    for k in range(2):
        ref = oracle.render_vjp(means[k], q, c, H, W, cot[k])
        for g, r in zip(grads, ref):
            assert oracle.rel_err(g[k], r) <= TOL_GRAD_F32
    nested = jax.jit(jax.vmap(jax.vmap(lambda m: render(Projected(m, q, c), H, W, capacity=64))))(
        np.stack([means, means[::-1]])
    )
    for i, j in ((0, 0), (0, 1), (1, 0)):
        want = oracle.render(means[(i + j) % 2], q, c, H, W)
        assert oracle.rel_err(nested[i, j], want) <= TOL_F32


def test_grow_capacity_and_call_with_capacity():
    m, q, c = case(300, seed=6, min_scale=3.0, max_scale=30.0)
    calls = []

    def fn(capacity):
        calls.append(capacity)
        return render_with_stats(Projected(m, q, c), H, W, backend="xla", capacity=capacity)

    image, stats, capacity = call_with_capacity(fn, 256)
    assert calls[0] == 256 and len(calls) == 2 and capacity == calls[1]
    assert not bool(stats.overflow) and capacity == pair_capacity(Projected(m, q, c), H, W, backend="xla")
    assert oracle.rel_err(image, oracle.render(m, q, c, H, W)) <= TOL_F32
    # Batched stats (vmap / a scan of steps) grow to the largest need.
    batched = type(stats)(jnp.asarray([10, int(stats.num_pairs), 5]), jnp.asarray([False, True, False]))
    assert grow_capacity(batched, 256) == capacity_bucket(int(stats.num_pairs))
    assert grow_capacity(stats, capacity) == capacity  # nothing overflowed: unchanged
    with pytest.raises(RuntimeError, match="still overflows"):
        call_with_capacity(fn, 256, max_calls=1)


def test_pallas_renders_in_passes_too():
    # Interpret mode on CPU: small and few passes keep it quick.
    m, q, c = case(30, seed=7, min_scale=2.0, max_scale=12.0)
    image, stats = kernels.render_tiled_pallas(m, q, c, H, W, capacity=16)
    assert bool(stats.overflow)
    assert oracle.rel_err(image, oracle.render(m, q, c, H, W)) <= TOL_F32


def test_backends_agree_on_dtype_and_float64_works_or_is_refused():
    m, q, c = case(40, seed=8)
    for backend in ("xla", "reference"):
        assert render(Projected(m, q, c), H, W, backend=backend).dtype == jnp.float32
        image, _ = render_with_stats(Projected(m, q, c), H, W, backend=backend, capacity=4096)
        assert image.dtype == jnp.float32
    half = [jnp.asarray(x, jnp.bfloat16) for x in (m, q, c)]
    assert (
        render(Projected(*half), H, W).dtype
        == render(Projected(*half), H, W, backend="reference").dtype
        == jnp.float32
    )
    m64, q64, c64 = (x.astype(np.float64) for x in (m, q, c))
    cot = np.random.default_rng(8).normal(size=(H, W, 3))
    with jax.enable_x64(True):
        for backend in ("xla", "reference"):
            image = render(Projected(m64, q64, c64), H, W, backend=backend)
            assert image.dtype == jnp.float64
            managed, _ = render_with_stats(Projected(m64, q64, c64), H, W, backend=backend, capacity=64)
            assert managed.dtype == jnp.float64
            assert oracle.rel_err(image, oracle.render(m64, q64, c64, H, W)) <= 1e-12
        loss = lambda *a: jnp.sum(cot * render(Projected(*a), H, W))
        grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(m64, q64, c64)
        for g, r in zip(grads, oracle.render_vjp(m64, q64, c64, H, W, cot)):
            assert g.dtype == jnp.float64 and oracle.rel_err(g, r) <= 1e-10
        with pytest.raises(ValueError, match="pallas backend renders float32 only"):
            render(Projected(m64, q64, c64), H, W, backend="pallas")


def test_batch_shaped_input_names_vmap():
    m, q, c = (np.stack([x, x]) for x in case(3, seed=9))
    with pytest.raises(ValueError, match=r"jax\.vmap"):
        render(Projected(m, q, c), H, W)

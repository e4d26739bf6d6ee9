"""Fake quantisers: values, straight-through gradients, host/JAX agreement."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gauss2d.codec import quantize as Q


def _rand(shape, seed=0, scale=1.0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * scale, jnp.float32)


@pytest.mark.parametrize("fn", ["fp16", "lsq", "rvq", "grid"])
def test_unknown_mode_raises(fn):
    x = _rand((4, 3))
    with pytest.raises(ValueError, match="unknown quantisation mode"):
        if fn == "fp16":
            Q.fp16_quantize(x, "noise")
        elif fn == "lsq":
            Q.lsq_quantize(x, Q.lsq_init(x, 4), 4, "noise")
        elif fn == "rvq":
            Q.rvq_quantize(x, jnp.zeros((1, 2, 3)), "noise")
        else:
            Q.grid_quantize_xy(x[:, :2], 0.5, 8, 8, "noise")


def test_fp16_values_and_ste_gradient():
    x = _rand((50, 2), scale=3.0)
    expected = np.asarray(x).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(Q.fp16_quantize(x, "round"), expected)
    np.testing.assert_array_equal(Q.fp16_quantize(x, "ste"), expected)
    np.testing.assert_array_equal(Q.fp16_quantize(x, "none"), x)
    cot = _rand((50, 2), seed=1)  # random cotangent: an all-ones one hides bugs
    grad = jax.grad(lambda v: jnp.sum(cot * Q.fp16_quantize(v, "ste")))(x)
    np.testing.assert_array_equal(grad, cot)
    grad = jax.grad(lambda v: jnp.sum(cot * Q.fp16_quantize(v, "round")))(x)
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("bits", [2, 6, 9])
def test_lsq_init_indices_and_exact_dequant(bits):
    x = _rand((300, 3), scale=[1.0, 0.1, 5.0])
    p = Q.lsq_init(x, bits)
    xn = np.asarray(x)
    np.testing.assert_allclose(p.offset, xn.min(0))
    np.testing.assert_allclose(p.scale, (xn.max(0) - xn.min(0)) / (2**bits - 1), rtol=1e-6)
    idx = Q.lsq_indices(xn, p, bits)
    assert idx.min() == 0 and idx.max() == 2**bits - 1  # min / max map to the ends
    deq = Q.lsq_dequantize(idx, p)
    # Within range, the error is at most half a step (plus float rounding).
    assert np.all(np.abs(deq - xn) <= np.asarray(p.scale) * 0.5 + 1e-5)
    # The jitted JAX fake quantiser yields the decoder's float32 values exactly.
    fq = jax.jit(functools.partial(Q.lsq_quantize, bits=bits, mode="round"))
    np.testing.assert_array_equal(fq(x, p), deq)
    np.testing.assert_array_equal(Q.lsq_quantize(x, p, bits, "ste"), deq)


def test_lsq_indices_clip_and_constant_channel():
    p = Q.LsqParams(jnp.asarray([0.5, 0.5, 1.0]), jnp.asarray([0.0, 0.0, 2.0]))
    x = np.asarray([[-3.0, 100.0, 2.0], [0.74, 0.76, 2.0]], np.float32)
    np.testing.assert_array_equal(Q.lsq_indices(x, p, 3), [[0, 7, 0], [1, 2, 0]])
    const = Q.lsq_init(jnp.full((5, 3), 0.25), 6)
    np.testing.assert_array_equal(const.scale, 1.0)  # not 0: no division by zero
    np.testing.assert_array_equal(
        Q.lsq_dequantize(Q.lsq_indices(np.full((5, 3), 0.25), const, 6), const), 0.25
    )
    with pytest.raises(ValueError, match="bits"):
        Q.lsq_init(jnp.ones((2, 3)), 0)


def test_lsq_gradients_match_lsq_formula():
    bits, qmax = 3, 7.0
    scale, offset = jnp.asarray([0.3]), jnp.asarray([-0.2])
    x = jnp.asarray([[-1.0], [0.05], [0.61], [1.3], [5.0]])  # below, inside x3, above the range
    cot = jnp.asarray([[0.7], [-1.3], [0.4], [2.1], [-0.9]])

    def loss(v, s, o):
        return jnp.sum(cot * Q.lsq_quantize(v, Q.LsqParams(s, o), bits, "ste", grad_scale=False))

    gx, gs, go = jax.grad(loss, argnums=(0, 1, 2))(x, scale, offset)
    # Independent NumPy expectation (LSQ+): inside the range d/dx = 1,
    # d/ds = round(v) - v, d/do = 0; below: d/ds = 0, d/do = 1; above: d/ds = Qmax, d/do = 1.
    v = (np.asarray(x)[:, 0] + 0.2) / 0.3
    inside = (v >= 0) & (v <= qmax)
    ds = np.where(inside, np.round(v) - v, np.where(v > qmax, qmax, 0.0))
    do = np.where(inside, 0.0, 1.0)
    c = np.asarray(cot)[:, 0]
    np.testing.assert_allclose(gx[:, 0], c * inside, atol=1e-6)
    np.testing.assert_allclose(gs, [np.sum(c * ds)], rtol=1e-4)
    np.testing.assert_allclose(go, [np.sum(c * do)], atol=1e-5)
    # With LSQ's gradient scaling the step gradient shrinks by 1 / sqrt(N Qmax), finitely.
    gs_scaled = jax.grad(lambda s: jnp.sum(cot * Q.lsq_quantize(x, Q.LsqParams(s, offset), bits, "ste")))(
        scale
    )
    np.testing.assert_allclose(gs_scaled, gs / np.sqrt(5 * qmax), rtol=1e-4)


def test_grid_quantize_xy_cell_centres_and_ste():
    h, w, step = 24, 40, 0.25
    xy = _rand((64, 2), seed=3)
    q = Q.grid_quantize_xy(xy, step, h, w, "round")
    means = np.asarray(0.5 * (jnp.tanh(q) + 1.0)) * [w, h]
    means0 = np.asarray(0.5 * (jnp.tanh(xy) + 1.0)) * [w, h]
    frac = means / step - 0.5  # an integer at cell centres
    np.testing.assert_allclose(frac - np.round(frac), 0.0, atol=2e-3)
    assert np.all(np.abs(means - means0) <= step / 2 + 1e-3)
    cells = Q.grid_indices(means0, step, h, w)
    np.testing.assert_allclose(q, Q.grid_to_raw_xy(cells, step, h, w), rtol=1e-5, atol=1e-5)
    cot = _rand((64, 2), seed=4)
    g = jax.grad(lambda v: jnp.sum(cot * Q.grid_quantize_xy(v, step, h, w, "ste")))(xy)
    np.testing.assert_array_equal(g, cot)


def _colors(n=256, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 1, (12, 3))
    return jnp.asarray(centres[rng.integers(0, 12, n)] + rng.normal(0, 0.03, (n, 3)), jnp.float32)


def test_kmeans_deterministic_and_beats_random_codebook():
    x = _colors()
    key = jax.random.PRNGKey(0)
    books = Q.rvq_kmeans_init(key, x, 2, 8)
    assert books.shape == (2, 8, 3)
    np.testing.assert_array_equal(books, Q.rvq_kmeans_init(key, x, 2, 8))
    err_km = float(jnp.mean((Q.rvq_quantize(x, books, "round")[0] - x) ** 2))
    rand = jnp.stack([x[:8], x[8:16] - x[:8]])  # a codebook from data, not optimised
    err_rand = float(jnp.mean((Q.rvq_quantize(x, rand, "round")[0] - x) ** 2))
    assert err_km < 0.5 * err_rand
    # Fewer points than codewords still works (same padded bucket: no recompile).
    few = Q.rvq_kmeans_init(key, x[:3], 2, 8)
    np.testing.assert_allclose(Q.rvq_quantize(x[:3], few, "round")[0], x[:3], atol=1e-6)


def test_rvq_indices_loss_ste_and_host_agreement():
    x = _colors(seed=1)
    books = Q.rvq_kmeans_init(jax.random.PRNGKey(1), x, 2, 8)
    xq, idx, loss = Q.rvq_quantize(x, books, "ste")
    assert idx.shape == (256, 2) and idx.dtype == jnp.int32
    assert int(idx.min()) >= 0 and int(idx.max()) < 8
    # Host side (encoder / decoder) agrees with the JAX fake quantiser.
    np.testing.assert_array_equal(Q.rvq_assign(np.asarray(x), np.asarray(books)), idx)
    # "ste" forwards exactly the codewords' sum (no x + (q - x) rounding).
    np.testing.assert_array_equal(Q.rvq_dequantize(np.asarray(idx), np.asarray(books)), xq)
    r0 = np.asarray(x)
    r1 = r0 - np.asarray(books)[0][np.asarray(idx[:, 0])]
    r2 = r1 - np.asarray(books)[1][np.asarray(idx[:, 1])]
    np.testing.assert_allclose(loss, np.mean(r1**2) + np.mean(r2**2), rtol=1e-5)
    cot = _rand((256, 3), seed=5)
    g = jax.grad(lambda v: jnp.sum(cot * Q.rvq_quantize(v, books, "ste")[0]))(x)
    np.testing.assert_array_equal(g, cot)
    # The commitment loss pulls x towards the (frozen) codewords.
    g_loss = jax.grad(lambda v: Q.rvq_quantize(v, books, "ste")[2])(x)
    assert float(jnp.sum(g_loss * (x - xq))) > 0
    assert float(Q.rvq_quantize(x, books, "none")[2]) == 0.0


def test_rvq_ema_update():
    x = _colors(seed=2)
    books = Q.rvq_kmeans_init(jax.random.PRNGKey(2), x, 2, 8) + 0.05  # perturbed codebooks
    state = Q.rvq_ema_init(books)
    update = jax.jit(functools.partial(Q.rvq_ema_update, decay=0.8))
    err0 = float(jnp.mean((Q.rvq_quantize(x, books, "round")[0] - x) ** 2))
    for _ in range(10):
        state = update(state, x)
    err1 = float(jnp.mean((Q.rvq_quantize(x, state.codebooks, "round")[0] - x) ** 2))
    assert err1 < err0
    # decay 0: stage-0 codewords become the means of their (non-empty) clusters.
    new = Q.rvq_ema_update(Q.rvq_ema_init(books), x, decay=0.0, eps=0.0)
    idx = np.asarray(Q.rvq_quantize(x, books, "round")[1][:, 0])
    for k in np.unique(idx):
        np.testing.assert_allclose(new.codebooks[0, k], np.asarray(x)[idx == k].mean(0), rtol=1e-5, atol=1e-6)

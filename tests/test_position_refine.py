"""Per-Gaussian position precision (v3 ``position_refine``): derived, coded and trained consistently."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from codec_helpers import H, W, assert_bit_equal

from gauss2d import codec
from gauss2d.codec import api, container, position_refine, rate
from gauss2d.codec.cov_space import size_octaves
from gauss2d.codec.v2.state import space_matrix, to_space
from gauss2d.codec.v3 import sections
from gauss2d.gaussians import CholeskyParams

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # state=None (not fine-tuned)


def mixed_params(n=300, seed=0) -> CholeskyParams:
    """Gaussians whose colour amplitudes span 2^-7..1 and sizes 0.3..6 px: every k from 0 to 3 occurs."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.02, 0.98, (n, 2)) * [W, H]
    xy = np.arctanh(2.0 * means / [W, H] - 1.0)
    scale = 2.0 ** rng.uniform(-1.7, 2.5, n)
    chol = np.stack([scale, rng.normal(0, 0.2, n), scale * rng.uniform(0.5, 1.5, n)], -1) - [0.5, 0, 0.5]
    color = rng.uniform(-1, 1, (n, 3)) * (2.0 ** rng.uniform(-7, 0, n))[:, None]
    return CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))


def settings(**changes):
    return codec.format_settings(3, **changes)


def test_refined_files_round_trip_bit_exactly_with_every_k():
    p = mixed_params()
    for changes in ({}, {"layers": 3}, {"position_step": 0.0625, "position_refine": 5}):
        s = settings(**changes)
        data = codec.encode(p, H, W, version=3, settings=s)
        q = api.quantized(p, H, W, version=3, settings=s)
        assert_bit_equal(q.params, codec.decode(data).params)
        k = np.concatenate([lay.refine for lay in q.layers])
        assert set(np.unique(k)) == set(range(s.base.refine_octaves + 1)), changes


def test_each_gaussian_lies_within_half_its_own_grid_step():
    p = mixed_params(seed=1)
    s = settings()
    q = api.quantized(p, H, W, version=3, settings=s)
    k = np.concatenate([lay.refine for lay in q.layers])
    size = np.asarray([W, H], np.float64)
    mean = lambda xy: 0.5 * (np.tanh(np.asarray(xy, np.float64)) + 1.0) * size  # noqa: E731
    err = np.abs(mean(q.params.xy) - mean(np.asarray(p.xy)[q.source]))
    step = s.base.set_step * 2.0**-k
    assert np.all(err <= step[:, None] / 2 + 1e-4)
    # and the coarse grid alone would not do as well for the refined ones
    assert np.mean(err[k == 3]) < s.base.set_step / 8


def test_brighter_and_smaller_gaussians_get_finer_grids():
    rng = np.random.default_rng(2)
    ycc = rng.uniform(-1, 1, (500, 3)).astype(np.float32)
    chol = np.abs(rng.normal(1, 0.5, (500, 3))).astype(np.float32)
    m = space_matrix("ycbcr")
    k = position_refine.refine_octaves(ycc, chol, m, 7, -3.75)
    assert np.all(position_refine.refine_octaves(4 * ycc, chol, m, 7, -3.75) >= k)
    assert np.all(position_refine.refine_octaves(ycc, 0.25 * (chol + 0.5) - 0.5 + 0 * chol, m, 7, -3.75) >= k)
    assert np.all(position_refine.refine_octaves(ycc, chol, m, 0, -3.75) == 0)
    # |rgb| is what counts: the same colour in either coded space gives the same k
    rgb = rng.uniform(-1, 1, (500, 3)).astype(np.float32)
    k_rgb = position_refine.refine_octaves(rgb, chol, space_matrix("rgb"), 7, -3.75)
    k_ycc = position_refine.refine_octaves(to_space(rgb, "ycbcr"), chol, m, 7, -3.75)
    t = np.log2(np.linalg.norm(rgb, axis=1)) - 0.25 * size_octaves(chol) + 3.75
    sure = np.abs(t - np.floor(t) - 0.5) > 1e-3  # away from the rounding boundaries
    np.testing.assert_array_equal(k_rgb[sure], k_ycc[sure])


def test_training_twin_matches_the_coder():
    rng = np.random.default_rng(3)
    ycc = rng.uniform(-1, 1, (2000, 3)).astype(np.float32) * 2.0 ** rng.uniform(-8, 0, (2000, 1))
    chol = rng.normal(0.5, 1.0, (2000, 3)).astype(np.float32)
    m = space_matrix("ycbcr")
    k_np = position_refine.refine_octaves(ycc.astype(np.float32), chol, m, 3, -3.75)
    k_jax = np.asarray(position_refine.refine_octaves_jax(jnp.asarray(ycc), jnp.asarray(chol), m, 3, -3.75))
    assert 0 < np.mean(k_np) < 3
    assert np.mean(k_np != k_jax) < 0.005  # float32 vs float64 at the rounding boundaries only


def test_fake_quantiser_puts_positions_where_the_file_does():
    p = mixed_params(seed=4)
    s = settings()
    state = codec.init_state(p, version=3, settings=s)
    fq = codec.fake_quantize(p, state, H, W, version=3, settings=s, quant_mode="round")
    q = api.quantized(p, H, W, version=3, state=state, settings=s)
    k_file = np.concatenate([lay.refine for lay in q.layers])
    k_fake = np.asarray(fq.symbols["refine"])[q.source]
    assert np.mean(k_file == k_fake) > 0.99
    same = k_file == k_fake
    fake_xy = np.asarray(fq.params.xy)[q.source]
    np.testing.assert_allclose(fake_xy[same], np.asarray(q.params.xy)[same], atol=1e-5)


def test_rate_counts_the_refinement_bits_and_the_coarse_set():
    p = mixed_params(seed=5)
    s = settings()
    state = codec.init_state(p, version=3, settings=s)
    fq = codec.fake_quantize(p, state, H, W, version=3, settings=s, quant_mode="round")
    est = api.versions.get(3).rate(fq, H, W, s)
    n = p.xy.shape[0]
    coarse = rate.position_bits(n, H, W, 1.0) + rate.position_model_bits(n, H, W, 1.0)
    refine_bits = 2.0 * float(np.asarray(fq.symbols["refine"]).sum())
    np.testing.assert_allclose(float(est["positions"]), float(coarse) + refine_bits, rtol=1e-5)
    alive = jnp.asarray((np.arange(n) % 2).astype(np.float32))
    half = api.versions.get(3).rate(fq, H, W, s, alive)
    assert float(half["positions"]) < float(est["positions"])


def test_refinement_saves_bits_on_faint_gaussians():
    """The same Gaussians at the same finest grid: the refined file codes fewer position bits."""
    p = mixed_params(seed=6)
    one = codec.encode(p, H, W, version=3, settings=settings(position_refine=0))
    refined = codec.encode(p, H, W, version=3, settings=settings())
    assert codec.bits_by_attribute(refined)["positions"] < codec.bits_by_attribute(one)["positions"]
    assert len(refined) < len(one)


def test_version_2_refuses_refined_settings_and_ignores_the_key():
    p = mixed_params(seed=7, n=40)
    assert codec.format_settings(2).position_refine == 0  # a v2 file stores one grid
    refined = dataclasses.replace(codec.format_settings(2), position_refine=2)
    with pytest.raises(ValueError, match="per-Gaussian precision needs version=3"):
        codec.encode(p, H, W, version=2, settings=refined)


def test_a_cut_or_damaged_refinement_chunk_is_a_codec_error():
    p = mixed_params(seed=8, n=120)
    data = codec.encode(p, H, W, version=3, settings=settings())
    records = container.read_records(data, container.PREAMBLE, "record", allow_truncation=False)
    h = sections.read_header(sections.split(data))
    layer = records[1]
    models, pos = container.read_inline(layer, 0, "models")
    raw, pos = container.read_inline(layer, pos, "raw")
    refine, pos = container.read_inline(layer, pos, "refine")
    short = container.join_inline([models, raw, refine[:-1]]) + layer[pos:]
    with pytest.raises(codec.CodecError, match="position refinement bits"):
        sections.decode_layer(short, h, h.layer_counts[0], 1)


def test_v3_compress_chooses_the_grid_before_fine_tuning_and_keeps_it():
    """compress (v3): the finest grid is picked on real files first, the fine-tuning trains on it,
    and the step search after it does not switch grids; v2 and untuned encodes skip the pick."""
    import jax  # noqa: PLC0415

    from gauss2d import compress, gaussians  # noqa: PLC0415
    from gauss2d.io import images  # noqa: PLC0415
    from gauss2d.train import own_loop  # noqa: PLC0415

    target = images.downscale(images.load_image(images.sample_image_path()), 8)
    params = gaussians.init_random(jax.random.key(0), 120, "cholesky")
    import optax  # noqa: PLC0415

    loss = lambda image, target, params: ((image - target) ** 2).mean()  # noqa: E731
    fit = own_loop.train(params, target, loss, optimizer=optax.adam(2e-2), iterations=40, log_every=40)
    params = fit.params
    steps = (0.0625, 0.25)
    out = compress.compress_params(params, target, version=3, qat_steps=10, lmbda=0.01)
    grid = out.summary["position_grid"]
    assert grid["position_step"] in (0.125, *steps) and grid["trials"] == 3
    assert out.summary["step_search"]["position_step"] == grid["position_step"]
    h = sections.read_header(sections.split(out.data))
    assert 2.0 ** (h.position_step_log2 - h.position_refine) == grid["position_step"]
    assert "position_grid" not in compress.compress_params(params, target, version=2, qat_steps=10).summary
    assert "position_grid" not in compress.compress_params(params, target, version=3, qat_steps=0).summary

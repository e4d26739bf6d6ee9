"""Format version 3: bit-exact round trips, the compact header, float16 quantisers, contexts, errors."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from codec_helpers import H, W, assert_bit_equal, random_params

from gauss2d import codec
from gauss2d.codec import api, versions
from gauss2d.codec.v3 import header as v3h
from gauss2d.codec.v3 import models
from gauss2d.gaussians import CholeskyParams, with_alpha

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # state=None (not fine-tuned)


def v3_settings(**changes) -> codec.V3Settings:
    extra = {k: changes.pop(k) for k in ("layer_order", "color_context", "shape_context") if k in changes}
    return dataclasses.replace(codec.format_settings(3, **changes), **extra)


def roundtrip(params, h, w, settings):
    data = codec.encode(params, h, w, version=3, settings=settings)
    q = api.quantized(params, h, w, version=3, settings=settings)
    out = codec.decode(data)
    assert_bit_equal(q.params, out.params)  # the encoder's dequantised params are exactly the decode
    assert (out.height, out.width) == (h, w)
    return data, out, q


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"layers": 3},
        {"cov_space": "cholesky", "color_by_size": False, "color_space": "rgb"},
        {"entropy_model": "laplace", "position_step": 0.25},
        {"entropy_model": "categorical", "layers": 2, "layer_order": "scale"},
        {"color_context": False, "shape_context": False, "layer_order": "given", "layers": 5},
    ],
)
def test_roundtrip_bit_exact(changes):
    p = random_params(237, seed=3)
    data, out, q = roundtrip(p, H, W, v3_settings(**changes))
    assert codec.version_of(data) == 3
    assert out.params.xy.shape == (237, 2)
    assert out.layers == out.total_layers == changes.get("layers", 1)
    # The stored Gaussians are the caller's, permuted: source is a permutation.
    assert sorted(q.source.tolist()) == list(range(237))


def test_one_gaussian_and_odd_sizes():
    p = random_params(1, seed=5, h=7, w=3)
    data, out, _ = roundtrip(p, 7, 3, v3_settings())
    assert out.params.xy.shape == (1, 2)
    bits = codec.bits_by_attribute(data)
    assert sum(v for k, v in bits.items() if k != "total") == bits["total"] == 8 * len(data)


def test_duplicate_cells_are_a_multiset():
    p = random_params(40, seed=6)
    dup = CholeskyParams(*(jnp.concatenate([a, a[:10]]) for a in p))  # ten Gaussians twice
    _, out, _ = roundtrip(dup, H, W, v3_settings(layers=2))
    assert out.params.xy.shape == (50, 2)


def test_more_layers_than_gaussians_is_refused():
    with pytest.raises(ValueError, match="layers=6 exceeds the 5 Gaussians"):
        codec.encode(random_params(5), H, W, version=3, settings=v3_settings(layers=6))
    with pytest.raises(ValueError, match="layers=0"):
        v3_settings(layers=0)


def test_alpha_params_are_refused_naming_v2():
    p = random_params(20)
    pa = with_alpha(p, jnp.zeros((20, 1)), jnp.zeros((20, 1)))
    with pytest.raises(ValueError, match="version=2"):
        codec.encode(pa, H, W, version=3, settings=v3_settings())


def test_float16_range_of_steps_is_checked():
    p = random_params(30)
    state = codec.init_state(p, version=3, settings=v3_settings())
    tiny = state._replace(color=state.color._replace(scale=jnp.full(3, 1e-6, jnp.float32)))
    with pytest.raises(ValueError, match="float16.*version=2"):
        codec.encode(p, H, W, version=3, state=tiny, settings=v3_settings())
    huge = state._replace(chol=state.chol._replace(offset=jnp.full(3, 1e5, jnp.float32)))
    with pytest.raises(ValueError, match="float16"):
        codec.encode(p, H, W, version=3, state=huge, settings=v3_settings())


def test_steps_are_rounded_to_float16_before_quantising():
    p = random_params(80, seed=2)
    s = v3_settings()
    state = codec.init_state(p, version=3, settings=s)
    odd = state._replace(color=state.color._replace(scale=state.color.scale * 1.0001237))
    q = api.quantized(p, H, W, version=3, state=odd, settings=s)
    steps = np.asarray(q.header.color_step)
    np.testing.assert_array_equal(steps, steps.astype(np.float16).astype(np.float32))
    data = codec.encode(p, H, W, version=3, state=odd, settings=s)
    assert_bit_equal(q.params, codec.decode(data).params)


def test_v2_state_is_accepted_and_of_state_is_exact():
    p = random_params(60, seed=4)
    s2 = codec.format_settings(2)
    v2_state = codec.init_state(p, version=2, settings=s2)
    v3_state = codec.init_state(p, version=3, settings=v3_settings())
    assert versions.of_state(v2_state) == 2 and versions.of_state(v3_state) == 3
    a = codec.encode(p, H, W, version=3, state=v2_state, settings=v3_settings())
    b = codec.encode(p, H, W, version=3, state=v3_state, settings=v3_settings())
    assert a == b  # the same steps and offsets: the same file


def test_fake_quantize_sees_the_float16_steps():
    p = random_params(64, seed=8)
    s = v3_settings()
    state = codec.init_state(p, version=3, settings=s)
    state = state._replace(chol=state.chol._replace(scale=state.chol.scale * 1.0003))
    fq = codec.fake_quantize(p, state, H, W, version=3, settings=s, quant_mode="round")
    q = api.quantized(p, H, W, version=3, state=state, settings=s)
    # Caller's order vs file order: compare through the permutation; the float16 steps make them equal
    # (float32 exp/log in the covariance space may differ by rounding, hence the tolerance).
    np.testing.assert_allclose(np.asarray(fq.params.color)[q.source], np.asarray(q.params.color), atol=1e-5)
    np.testing.assert_allclose(np.asarray(fq.params.chol)[q.source], np.asarray(q.params.chol), atol=1e-5)
    rate = api.versions.get(3).rate(fq, H, W, s)
    assert float(rate["total"]) > 0


def test_header_is_compact_and_parses_back():
    p = random_params(200)
    plain = api.quantized(p, H, W, version=3, settings=v3_settings(layers=4, position_refine=0))
    # 1+1 (sizes) + 1 (L) + 4 x 1 (counts) + 1 (flags) + 24 (12 float16)
    assert len(v3h.pack_header(plain.header)) == 32
    q = api.quantized(p, H, W, version=3, settings=v3_settings(layers=4))
    payload = v3h.pack_header(q.header)
    assert len(payload) == 32 + 3  # + refine octaves (u8) and reference (float16)
    back = v3h.parse_header(payload)
    assert (back.position_refine, back.refine_ref) == (3, -3.75)
    assert (q.header.position_refine, q.header.refine_ref) == (3, -3.75)
    assert back.position_step_log2 == 0  # the set on 1 px cells: 1/8 px (the finest) x 2^3
    assert back.layer_counts == q.header.layer_counts == (13, 27, 53, 107)  # geometric sizes
    for name in ("chol_step", "chol_offset", "color_step", "color_offset"):
        np.testing.assert_array_equal(getattr(back, name), getattr(q.header, name))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x28\x38\x01\x05\x09" + bytes(24), "expected 32"),  # bit 3 without its 3 bytes
        (b"\x28\x38\x01\x05\x09" + bytes(24) + b"\x00\x00\x00", "refine octaves 0"),
        (b"\x28\x38\x01\x05\x89" + bytes(24) + b"\x01\x00\x00", "finest grid"),  # 2^-8 px / 2
        (b"\x28\x38\x01\x05\x01" + bytes(23), "expected"),
        (b"\x28\x38\x01\x00\x01" + bytes(24), "at least one Gaussian"),
        (b"\x00\x38\x01\x05\x01" + bytes(24), "height=0"),
        (b"\x28\x38\x01\x05\x91" + bytes(24), "position_step_log2"),
        (b"\x28\x38\x01\x05\x01" + bytes(24), "step"),  # zero steps
    ],
)
def test_header_errors(payload, message):
    with pytest.raises(codec.CodecError, match=message):
        v3h.parse_header(payload)


def test_stream_models_roundtrip_and_pick_the_smaller():
    rng = np.random.default_rng(0)
    for values in (
        np.round(rng.laplace(0, 3, 500)).astype(np.int64),  # Laplace-shaped
        rng.choice([-7, 0, 9], 500, p=[0.2, 0.5, 0.3]),  # sparse: a histogram
        np.full(9, 4),  # one symbol: no words
    ):
        w = models.LayerWriter()
        w.add(values, "a")
        w.add(values[::-1].copy(), "b")
        m, words = w.finish()
        r = models.LayerReader(m, words, "test")
        np.testing.assert_array_equal(r.read(values.size, "a"), values)
        np.testing.assert_array_equal(r.read(values.size, "b"), values[::-1])
        r.finish()
    # A three-symbol histogram is a few bytes; a Laplace model is 4 bytes of float16 and fits worse.
    sparse = rng.choice([-7, 0, 9], 500, p=[0.2, 0.5, 0.3])
    w = models.LayerWriter()
    w.add(sparse, "s")
    assert w.models[0] & 1 == models.KIND_HISTOGRAM


def test_layer_reader_refuses_a_count_its_words_cannot_hold():
    w = models.LayerWriter()
    w.add(np.arange(50) % 7, "a")
    m, words = w.finish()
    with pytest.raises(codec.CodecError, match="needs more bits"):
        models.LayerReader(m, words, "test").read(10**6, "a")


def test_context_models_pay_where_the_statistics_differ():
    # Colours whose spread grows with size: a size context must code them in fewer bits.
    rng = np.random.default_rng(1)
    n = 600
    means = rng.uniform(0.02, 0.98, (n, 2)) * [W, H]
    xy = np.arctanh(2.0 * means / [W, H] - 1.0)
    big = rng.random(n) < 0.5
    chol = np.where(big[:, None], [3.0, 0.0, 3.0], [0.1, 0.0, 0.1]) + rng.normal(0, 0.02, (n, 3))
    color = np.where(big[:, None], 1.0, 0.02) * rng.normal(0, 0.3, (n, 3))
    p = CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))
    plain = v3_settings(color_context=False, shape_context=False, color_by_size=False)
    ctx = dataclasses.replace(plain, color_context=True)
    a, _, _ = roundtrip(p, H, W, plain)
    b, _, _ = roundtrip(p, H, W, ctx)
    assert len(b) < 0.95 * len(a)


def test_bits_by_attribute_sum_to_the_file():
    p = random_params(300, seed=9)
    data = codec.encode(p, H, W, version=3, settings=v3_settings(layers=3))
    bits = codec.bits_by_attribute(data)
    assert set(bits) == {"header", "positions", "covariance", "color", "total"}
    assert bits["header"] + bits["positions"] + bits["covariance"] + bits["color"] == bits["total"]
    assert all(bits[k] > 0 for k in bits)


def test_v3_is_smaller_than_v2_on_the_same_quantised_values():
    p = random_params(300, seed=11)
    s2 = codec.format_settings(2, predict="off")
    state = codec.init_state(p, version=2, settings=s2)
    # float16-representable steps, so v2 and v3 quantise identically
    state = type(state)(
        *(type(q)(*(jnp.asarray(np.asarray(a).astype(np.float16), jnp.float32) for a in q)) for q in state)
    )
    v2 = codec.encode(p, H, W, version=2, state=state, settings=s2)
    v3 = codec.encode(p, H, W, version=3, state=state, settings=v3_settings())
    p2 = codec.decode(v2).params
    p3 = codec.decode(v3).params
    key = lambda q: np.lexsort(np.asarray(q.xy).T)  # noqa: E731 (orders differ: compare as sets)
    for a, b in zip(p2, p3, strict=True):
        np.testing.assert_array_equal(np.sort(np.asarray(a)[key(p2)], 0), np.sort(np.asarray(b)[key(p3)], 0))
    assert len(v3) < len(v2)


def test_budget_preflight_reads_a_v3_header():
    from gauss2d.codec import budget, container  # noqa: PLC0415

    p = random_params(50)
    data = codec.encode(p, H, W, version=3, settings=v3_settings(layers=2))
    h = budget.check_file(data, 16.0, "xla", "'f.g2d'", "--memory_limit_gb")
    assert (h.height, h.width, h.num_gaussians, h.num_layers) == (H, W, 50, 2)
    # A valid small file that declares a 65536 x 65536 image: refused from its header alone.
    q = api.quantized(p, H, W, version=3, settings=v3_settings())
    big = dataclasses.replace(q.header, height=65536, width=65536, layer_counts=(25,))
    layer = container.read_records(data, container.PREAMBLE, "r", allow_truncation=False)[1]
    blob = container.preamble(3) + container.pack_records([v3h.pack_header(big), layer])
    with pytest.raises(budget.MemoryBudgetError, match="memory_limit_gb"):
        budget.check_file(blob, 16.0, "xla", "'big.g2d'", "--memory_limit_gb")

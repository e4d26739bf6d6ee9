"""Version 3's progressive layers: prefixes, truncation at every byte, layer orders."""

import jax.numpy as jnp
import numpy as np
import pytest
from codec_helpers import H, W, assert_bit_equal, random_params

from gauss2d import codec
from gauss2d.codec import container
from gauss2d.codec.v3 import order

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # state=None (not fine-tuned)


@pytest.fixture(scope="module")
def four_layers():
    p = random_params(90, seed=12)
    data = codec.encode(p, H, W, version=3, settings=codec.format_settings(3, layers=4))
    return data, codec.decode(data)


def _prefix(params, n):
    return type(params)(*(a[:n] for a in params))


def test_each_prefix_of_layers_is_the_full_decodes_first_gaussians(four_layers):
    data, full = four_layers
    assert (full.layers, full.total_layers, full.truncated) == (4, 4, False)
    counts = []
    for k in range(1, 6):
        out = codec.decode(data, layers=k)
        assert out.layers == min(k, 4) and out.total_layers == 4
        n = out.params.xy.shape[0]
        counts.append(n)
        assert_bit_equal(out.params, _prefix(full.params, n))
    assert counts == [6, 18, 42, 90, 90]  # geometric sizes 6, 12, 24, 48 (order.counts)


def test_truncated_at_every_byte(four_layers):
    data, full = four_layers
    records = container.read_records(data, container.PREAMBLE, "record", allow_truncation=False)
    ends = np.cumsum([container.PREAMBLE] + [len(container.pack_records([r])) for r in records])
    # ends[1]: the header record's end; ends[1 + k]: the end of layer k.
    seen = set()
    for cut in range(len(data) + 1):
        blob = data[:cut]
        complete = int(np.searchsorted(ends, cut, side="right")) - 2  # whole layers in the prefix
        if complete < 1:
            with pytest.raises(codec.CodecError, match="truncated|empty|preamble"):
                codec.decode(blob)
            continue
        out = codec.decode(blob)
        assert out.layers == complete and out.total_layers == 4
        assert out.truncated == (complete < 4)
        assert_bit_equal(out.params, _prefix(full.params, out.params.xy.shape[0]))
        seen.add(complete)
    assert seen == {1, 2, 3, 4}


def test_too_short_messages(four_layers):
    data, _ = four_layers
    header_end = container.PREAMBLE + len(container.pack_records([data[6 : 6 + data[5]]]))
    with pytest.raises(codec.CodecError, match="no complete header record"):
        codec.decode(data[: header_end - 1])
    with pytest.raises(codec.CodecError, match="header but no complete layer"):
        codec.decode(data[: header_end + 3])


def test_extra_bytes_after_the_last_layer_are_refused(four_layers):
    data, _ = four_layers
    with pytest.raises(codec.CodecError, match="after the last"):
        codec.decode(data + b"\x05ab")
    with pytest.raises(codec.CodecError):  # a complete extra record: more layers than declared
        codec.decode(data + container.pack_records([b"xyz"]))


def test_layers_argument_is_checked(four_layers):
    data, _ = four_layers
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="layers="):
            codec.decode(data, layers=bad)


def test_v2_files_have_one_layer():
    p = random_params(30)
    out = codec.decode(codec.encode(p, H, W, version=2), layers=3)
    assert (out.layers, out.total_layers) == (1, 1)


def test_orders_rank_as_documented():
    chol = np.asarray([[0.0, 0, 0.0], [2.0, 0, 2.0], [0.5, 0, 0.5]], np.float32)  # areas 0.25, 6.25, 1
    color = np.asarray([[2.0, 0, 0], [0.1, 0, 0], [1.5, 0, 0]], np.float32)  # energies 4, 0.01, 2.25
    np.testing.assert_array_equal(order.rank(chol, color, "scale"), [1, 2, 0])
    np.testing.assert_array_equal(order.rank(chol, color, "contribution"), [2, 0, 1])  # 1, 0.0625, 2.25
    np.testing.assert_array_equal(order.rank(chol, color, "given"), [0, 1, 2])
    parts = order.split(order.rank(chol, color, "scale"), 2, "equal")
    assert [p.tolist() for p in parts] == [[1, 2], [0]]


def test_first_layer_holds_the_largest_gaussians_by_scale():
    p = random_params(120, seed=13)
    s = codec.V3Settings(codec.format_settings(2), layers=3, layer_order="scale", layer_sizes="equal")
    out = codec.decode(codec.encode(p, H, W, version=3, settings=s))
    lower = np.asarray(out.params.chol, np.float64) + [0.5, 0, 0.5]
    area = np.abs(lower[:, 0] * lower[:, 2])
    assert area[:40].min() >= area[80:].max() - 1e-3  # quantised areas keep the split up to rounding
    assert jnp.asarray(out.params.xy).shape == (120, 2)


@pytest.mark.parametrize(("n", "layers"), [(1, 1), (4, 4), (5, 4), (90, 4), (2250, 4), (10, 8), (1000, 3)])
def test_layer_counts(n, layers):
    geo = order.counts(n, layers)
    equal = order.counts(n, layers, "equal")
    for c in (geo, equal):
        assert len(c) == layers and sum(c) == n and min(c) >= 1
    assert max(equal) - min(equal) <= 1
    if n >= 2**layers:  # each layer about twice the last
        assert all(abs(b - 2 * a) <= 2 for a, b in zip(geo, geo[1:]))
    with pytest.raises(ValueError, match="exceeds"):
        order.counts(layers - 1, layers) if layers > 1 else order.counts(0, 1)

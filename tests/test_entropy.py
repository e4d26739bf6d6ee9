"""Adaptive categorical coding and position-set coding."""

import math

import numpy as np
import pytest

from gauss2d.codec import entropy as E
from gauss2d.codec.container import CodecError


def _entropy_bits(symbols):
    p = np.bincount(symbols) / len(symbols)
    p = p[p > 0]
    return -np.sum(p * np.log2(p)) * len(symbols)


@pytest.mark.parametrize(
    "alphabet, n, kind",
    [
        (8, 10000, "uniform"),
        (64, 5000, "uniform"),
        (64, 20000, "geometric"),
        (97, 3000, "geometric"),
        (3, 7, "uniform"),
    ],
)
def test_round_trip_and_rate_near_empirical_entropy(alphabet, n, kind):
    rng = np.random.default_rng(alphabet + n)
    if kind == "uniform":
        s = rng.integers(0, alphabet, n)
    else:
        s = np.minimum(rng.geometric(0.25, n) - 1, alphabet - 1)
    data = E.encode_symbols(s, alphabet)
    np.testing.assert_array_equal(E.decode_symbols(data, n, alphabet), s)
    # Model + ANS overhead: ~1 bit per absent symbol, <= 20 bits per present one
    # (exp-Golomb counts), and <= 3 words of ANS state and padding.
    overhead = 96 + alphabet + 20 * np.count_nonzero(np.bincount(s))
    assert 8 * len(data) <= _entropy_bits(s) + overhead
    if n >= 5000:
        assert 8 * len(data) / n <= _entropy_bits(s) / n + 0.05


def test_skewed_stream_beats_fixed_length():
    s = np.random.default_rng(1).choice(64, 4000, p=np.r_[0.9, np.full(63, 0.1 / 63)])
    data = E.encode_symbols(s, 64)
    assert 8 * len(data) < 0.2 * 6 * 4000
    np.testing.assert_array_equal(E.decode_symbols(data, 4000, 64), s)


def test_degenerate_streams():
    assert E.encode_symbols(np.zeros(0, np.int64), 8) == b""
    assert E.decode_symbols(b"", 0, 8).shape == (0,)
    one = E.encode_symbols(np.full(1000, 5), 8)
    assert len(one) <= 3  # the model only: a single symbol needs no payload
    np.testing.assert_array_equal(E.decode_symbols(one, 1000, 8), 5)
    np.testing.assert_array_equal(E.decode_symbols(E.encode_symbols([0], 1), 1, 1), [0])


def test_encode_symbols_rejects_bad_input():
    with pytest.raises(ValueError, match="symbols must lie"):
        E.encode_symbols(np.asarray([0, 8]), 8)
    with pytest.raises(ValueError, match="alphabet_size"):
        E.encode_symbols(np.asarray([0]), 0)


def test_near_uniform_streams_fall_back_to_fixed_length():
    s = np.random.default_rng(8).integers(0, 64, 300)
    data = E.encode_symbols(s, 64)
    assert data[0] >> 4 == E.RAW_MARKER and len(data) == (4 + 6 * 300 + 7) // 8
    np.testing.assert_array_equal(E.decode_symbols(data, 300, 64), s)
    with pytest.raises(CodecError, match="expected"):
        E.decode_symbols(data[:-1], 300, 64)
    with pytest.raises(CodecError, match="expected"):
        E.decode_symbols(data, 10**6, 64)
    five = E.encode_symbols(np.asarray([0, 1, 2, 3, 4]), 5)  # 3-bit fields, alphabet of 5
    np.testing.assert_array_equal(E.decode_symbols(five, 5, 5), [0, 1, 2, 3, 4])
    bad = bytes([0xF0 | 0b0111, 0b11100000])  # marker, then symbols 7 and 0 ... 7 >= 5
    with pytest.raises(CodecError, match="out of the alphabet"):
        E.decode_symbols(bad, 3, 5)


def test_decode_symbols_rejects_garbage():
    s = np.random.default_rng(2).choice(8, 500, p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.01, 0.01])
    data = E.encode_symbols(s, 8)
    with pytest.raises(CodecError, match="empty symbol stream"):
        E.decode_symbols(data, 0, 8)
    with pytest.raises(CodecError, match="truncated entropy model"):
        E.decode_symbols(data[:2], 500, 8)
    with pytest.raises(CodecError, match="whole number of words"):
        E.decode_symbols(data[:-1], 500, 8)
    with pytest.raises(CodecError, match="need >="):  # count far beyond what the payload can hold
        E.decode_symbols(data, 10**6, 8)
    with pytest.raises(CodecError, match="left after|corrupt"):  # too few symbols requested
        E.decode_symbols(data, 400, 8)
    with pytest.raises(CodecError, match="no symbol with a non-zero count"):
        E.decode_symbols(bytes([0x0F, 0xF0]), 5, 8)  # k = 0, then eight zero counts
    with pytest.raises(CodecError, match="count too large"):
        E.decode_symbols(bytes(16), 5, 8)
    rng = np.random.default_rng(3)
    for _ in range(300):
        junk = rng.integers(0, 256, rng.integers(1, 64)).astype(np.uint8).tobytes()
        try:
            out = E.decode_symbols(junk, 50, 8)
        except CodecError:
            continue
        assert out.shape == (50,) and out.min() >= 0 and out.max() < 8


def test_decoded_symbols_only_those_in_the_model():
    # Symbols 1 and 6 only: whatever the payload, nothing else may come out.
    data = E.encode_symbols(np.asarray([1, 6] * 50), 8)
    model_len = len(data) - 4 * ((len(data) - 3) // 4)
    rng = np.random.default_rng(4)
    for _ in range(200):
        payload = rng.integers(1, 2**32, rng.integers(1, 4), dtype=np.uint64).astype("<u4").tobytes()
        try:
            out = E.decode_symbols(data[:model_len] + payload, 100, 8)
        except CodecError:
            continue
        assert set(np.unique(out)) <= {1, 6}


def test_symbols_section_round_trip_and_errors():
    rng = np.random.default_rng(5)
    streams = [(rng.integers(0, 64, 300), 64), (rng.integers(0, 8, 300), 8)]
    data = E.symbols_section(streams)
    out = E.read_symbols_section(data, 300, [64, 8], "t")
    for (s, _), o in zip(streams, out, strict=True):
        np.testing.assert_array_equal(s, o)
    with pytest.raises(CodecError, match="unread bytes"):
        E.read_symbols_section(data + b"\x00", 300, [64, 8], "t")
    with pytest.raises(CodecError):
        E.read_symbols_section(data[:-3], 300, [64, 8], "t")


def test_positions_round_trip_with_duplicates():
    rng = np.random.default_rng(6)
    cells = 1000
    keys = np.sort(np.r_[rng.integers(0, cells, 300), [0, 0, cells - 1, cells - 1]])
    data = E.encode_positions(keys, cells)
    np.testing.assert_array_equal(E.decode_positions(data, keys.size, cells), keys)
    np.testing.assert_array_equal(E.decode_positions(E.encode_positions([7], 8), 1, 8), [7])
    with pytest.raises(ValueError, match="sorted"):
        E.encode_positions(np.asarray([3, 1]), cells)
    with pytest.raises(CodecError):
        E.decode_positions(data, keys.size, cells // 4)  # a grid too small for the keys


def test_position_set_coding_saves_log2_n_factorial():
    """N = 2000 uniform positions on a 768 x 512 image, 1/8-px grid.

    Fixed-length coding of an *ordered* list costs log2(M) bits per position
    (M grid cells); a set needs log2(M choose N) ~ log2(M) - log2(N!)/N bits.
    """
    rng = np.random.default_rng(7)
    n, gw, gh = 2000, 768 * 8, 512 * 8
    cells = gw * gh
    gx, gy = rng.integers(0, gw, n), rng.integers(0, gh, n)
    keys = np.sort(gy * gw + gx)
    data = E.encode_positions(keys, cells)
    decoded = E.decode_positions(data, n, cells)
    # The decoded set equals the quantised set (as a multiset of (gx, gy)).
    assert sorted(zip(decoded % gw, decoded // gw, strict=True)) == sorted(
        zip(gx.tolist(), gy.tolist(), strict=True)
    )
    fixed = math.log2(cells)  # ideal fixed-length bits per position, 24.6
    saving = math.lgamma(n + 1) / math.log(2) / n  # log2(N!) / N, 9.5
    rate = 8 * len(data) / n
    assert rate <= fixed - saving + 0.3, (rate, fixed, saving)
    # ... and it is close to the information content of a uniform random set.
    ideal = (math.lgamma(cells + 1) - math.lgamma(n + 1) - math.lgamma(cells - n + 1)) / math.log(2) / n
    assert ideal <= rate <= ideal + 0.3


def test_decode_positions_rejects_garbage():
    data = E.encode_positions(np.arange(0, 500, 5), 1000)
    with pytest.raises(CodecError, match="mantissa"):
        E.decode_positions(data + b"\x00", 100, 1000)
    with pytest.raises(CodecError):
        E.decode_positions(data[:-1], 100, 1000)
    with pytest.raises(CodecError, match="truncated varint"):
        E.decode_positions(b"", 100, 1000)

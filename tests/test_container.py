"""The one container: preamble, framed (v1) and table (v2) layouts, records (v3 / .g2v), varints, bounds."""

import struct
import zlib

import numpy as np
import pytest

from gauss2d.codec import container as C
from gauss2d.codec import decode, versions
from gauss2d.codec.container import CodecError

NAMES = ("header", "positions", "covariance", "color")


def _framed(sections=(b"hdr", b"", b"pos" * 5, b"c")):
    return C.pack_framed(1, list(sections))


def test_framed_spans_and_crc():
    data = _framed()
    assert data[:5] == b"G2D\x00\x01"
    spans = C.split_framed(data, NAMES)
    assert [data[a:b] for a, b in spans] == [b"hdr", b"", b"pos" * 5, b"c"]
    _, length, crc = struct.unpack_from("<BII", data, 5)
    assert crc == zlib.crc32(data[14 : 14 + length])  # zlib crc32 of the payload


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d[:-1], "truncated"),
        (lambda d: d[:8], "truncated"),
        (lambda d: d + b"\x00", "trailing garbage"),
        (lambda d: d[:-1] + b"d", "CRC mismatch in the color section"),
        (lambda d: d[:5] + b"\x01" + d[6:], "section id 1"),
        (lambda d: d[:6] + struct.pack("<I", 2**31) + d[10:], "claims 2147483648 bytes"),
    ],
)
def test_framed_errors(mutate, match):
    with pytest.raises(CodecError, match=match):
        C.split_framed(mutate(_framed()), NAMES)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty file"),
        (b"G2D", "truncated"),
        (b"PNG\x00\x01", "not a gauss2d file"),
        (b"G2D\x00\x07", "unsupported format version 7 \\(this decoder reads 1, 2 and 3\\)"),
        ("G2D\x00\x01", "expected bytes"),
    ],
)
def test_preamble_errors(data, match):
    with pytest.raises(CodecError, match=match):
        C.read_version(data, versions.VERSIONS)


def test_video_magic_is_not_a_still_image():
    with pytest.raises(CodecError, match="not a gauss2d file"):
        C.read_version(C.VIDEO_MAGIC + b"\x01", versions.VERSIONS)
    assert C.read_version(C.VIDEO_MAGIC + b"\x01", (1,), magic=C.VIDEO_MAGIC) == 1


def test_table_round_trip_and_entries():
    data = C.pack_table(2, [b"h" * 3, b"", b"x" * 200], [C.join_inline([b"e1", b"e22"])])
    listed, rest = C.split_table(data, ("a", "b", "c"), "v2")
    assert listed == [b"hhh", b"", b"x" * 200]
    assert C.split_inline(rest, 2, "entries") == [b"e1", b"e22"]
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])  # one CRC of every byte before it


def test_table_bounds():
    for length, match in ((10**6, "exceeds the limit"), (5, "claim 5 bytes, 3 present")):
        body = C.preamble(2) + C.put_varint(length) + b"abc"  # a length past the end, CRC valid
        with pytest.raises(CodecError, match=match):
            C.split_table(body + struct.pack("<I", zlib.crc32(body)), ("a",), "v2")
    data = C.pack_table(2, [b"abc"])
    with pytest.raises(CodecError, match="CRC mismatch"):
        C.split_table(data[:-5] + b"b" + data[-4:], ("a",), "v2")
    with pytest.raises(CodecError, match="truncated"):
        C.split_table(data[:6], ("a",), "v2")


def test_inline_must_be_consumed_exactly():
    blob = C.join_inline([b"a", b"bc"])
    with pytest.raises(CodecError, match="1 unread bytes"):
        C.split_inline(blob + b"z", 2, "t")
    with pytest.raises(CodecError, match="length"):
        C.split_inline(blob[:-1], 2, "t")  # the second blob's length runs past the end


def test_records_stop_at_the_last_complete_one():
    records = [b"layer0", b"", b"layer2" * 40]
    data = b"PRE" + C.pack_records(records)
    assert C.read_records(data, 3, "layer", allow_truncation=False) == records
    ends = [3]
    for r in records:
        ends.append(ends[-1] + len(C.put_varint(len(r))) + len(r) + 4)
    for cut in range(3, len(data) + 1):  # every truncation: the whole records before the cut
        got = C.read_records(data[:cut], 3, "layer", allow_truncation=True)
        assert got == records[: sum(e <= cut for e in ends[1:])], cut
        if cut not in ends:
            with pytest.raises(CodecError, match="truncated|length"):
                C.read_records(data[:cut], 3, "layer", allow_truncation=False)
    bad = bytearray(data)
    bad[6] ^= 1  # inside record 0's payload: a complete record with a wrong CRC always fails
    with pytest.raises(CodecError, match="CRC mismatch in layer 0"):
        C.read_records(bytes(bad), 3, "layer", allow_truncation=True)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**21, 2**32 - 1])
def test_varint_round_trip(value):
    enc = C.put_varint(value)
    assert C.get_varint(enc + b"xyz", 0, 2**32, "v") == (value, len(enc))


def test_varint_errors():
    with pytest.raises(CodecError, match="truncated"):
        C.get_varint(b"\x80\x80", 0, 10**9, "v")
    with pytest.raises(CodecError, match="longer than 5"):
        C.get_varint(b"\x80" * 6 + b"\x01", 0, 2**60, "v")
    with pytest.raises(CodecError, match="exceeds the limit"):
        C.get_varint(C.put_varint(1000), 0, 999, "v")
    with pytest.raises(ValueError):
        C.put_varint(-1)


def test_max_gaussians_for_size():
    assert C.max_gaussians_for_size(10) == 10 * C.GAUSSIANS_PER_BYTE
    assert C.max_gaussians_for_size(2**40) == C.MAX_GAUSSIANS
    with pytest.raises(CodecError, match="too many"):
        C.check_declared_count(641, 10)
    with pytest.raises(ValueError, match="duplicate"):
        C.check_encoded_count(641, 10)


@pytest.fixture(scope="module")
def small_files():
    import jax.numpy as jnp  # noqa: PLC0415
    from codec_helpers import encode_v1, encode_v2  # noqa: PLC0415

    from gauss2d.gaussians import CholeskyParams  # noqa: PLC0415

    rng = np.random.default_rng(0)
    params = CholeskyParams(
        jnp.asarray(rng.uniform(-1, 1, (20, 2)), jnp.float32),
        jnp.asarray(rng.laplace([0.8, 0.0, 0.8], 0.2, (20, 3)), jnp.float32),
        jnp.asarray(rng.uniform(0, 1, (20, 3)), jnp.float32),
    )
    return {
        "v1 entropy": encode_v1(params, 12, 16, mode="entropy"),
        "v1 gaussianimage": encode_v1(params, 12, 16, mode="gaussianimage"),
        "v2": encode_v2(params, 12, 16),
    }


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", ["v1 entropy", "v1 gaussianimage", "v2"])
def test_truncation_at_every_byte_is_a_codec_error(small_files, name):
    data = small_files[name]
    assert decode(data).params.xy.shape == (20, 2)
    for cut in range(len(data)):
        with pytest.raises(CodecError) as err:
            decode(data[:cut])
        assert not str(err.value).startswith("corrupt gauss2d file:"), (cut, err.value)

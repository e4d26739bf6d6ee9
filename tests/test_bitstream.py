"""Version 1's header and the fixed-width bit packing (the container: tests/test_container.py)."""

import dataclasses

import numpy as np
import pytest

from gauss2d.codec import bitpack
from gauss2d.codec import container as C
from gauss2d.codec.container import CodecError
from gauss2d.codec.v1 import header as B


def _header(**kw):
    fields = {
        "height": 40,
        "width": 56,
        "num_gaussians": 100,
        "parameterization": "cholesky",
        "mode": "entropy",
        "chol_bits": 6,
        "rvq_stages": 2,
        "codebook_size": 8,
        "codebook_dtype": "float16",
        "position_step_log2": -3,
        "content_crc": 0xDEADBEEF,
        "chol_scale": np.asarray([0.1, 0.2, 0.3], np.float32),
        "chol_offset": np.asarray([-1.0, 0.0, 1.5], np.float32),
        "codebooks": np.arange(48, dtype=np.float32).reshape(2, 8, 3) / 7,
    }
    fields.update(kw)
    return B.Header(**fields)


def test_codec_error_is_a_user_error():
    from gauss2d.errors import Gauss2dError

    assert issubclass(CodecError, Gauss2dError) and issubclass(CodecError, Exception)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_header_round_trip(dtype):
    h = _header(codebook_dtype=dtype)
    got = B.parse_header(B.pack_header(h))
    for f in dataclasses.fields(h):
        a, b = getattr(h, f.name), getattr(got, f.name)
        if f.name == "codebooks":
            a = a.astype(dtype).astype(np.float32)  # the file stores the codebook dtype
        np.testing.assert_array_equal(a, b, err_msg=f.name)
    size = 24 + 24 + 48 * (2 if dtype == "float16" else 4)
    assert len(B.pack_header(h)) == size


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("height", 0, "height"),
        ("width", C.MAX_SIDE + 1, "width"),
        ("num_gaussians", C.MAX_GAUSSIANS + 1, "num_gaussians"),
        ("chol_bits", 17, "chol_bits"),
        ("position_step_log2", 1, "position_step_log2"),
        ("chol_scale", np.asarray([0.1, 0.0, 0.3], np.float32), "chol_scale"),
        ("chol_offset", np.asarray([np.nan, 0.0, 0.3], np.float32), "chol_offset"),
    ],
)
def test_header_validation(field, value, match):
    with pytest.raises(CodecError, match=match):
        _header(**{field: value}).validate()


def _patch_fixed(payload, index, value):
    fields = list(B._FIXED.unpack_from(payload))
    fields[index] = value
    return B._FIXED.pack(*fields) + payload[B._FIXED.size :]


@pytest.mark.parametrize(
    "index, value, match",
    [
        (3, 1, "parameterization"),
        (4, 2, "mode"),
        (8, 2, "dtype"),
        (6, 0, "codebook shape"),
        (7, 9, "header section is"),  # a different codebook size changes the expected length
        (2, 0, "num_gaussians"),
        (0, 70000, "height"),
    ],
)
def test_parse_header_rejects_bad_fields(index, value, match):
    payload = B.pack_header(_header())
    with pytest.raises(CodecError, match=match):
        B.parse_header(_patch_fixed(payload, index, value))


def test_parse_header_rejects_wrong_length():
    payload = B.pack_header(_header())
    for bad in (b"", payload[:10], payload[:-1], payload + b"\x00"):
        with pytest.raises(CodecError, match="header section is"):
            B.parse_header(bad)


def test_gaussianimage_header_requires_zero_step():
    with pytest.raises(CodecError, match="position_step_log2"):
        _header(mode="gaussianimage").validate()
    _header(mode="gaussianimage", position_step_log2=0).validate()


def test_pack_bits_round_trip_and_layout():
    rng = np.random.default_rng(0)
    widths = rng.integers(0, 50, 500)
    values = rng.integers(0, 2**62, 500).astype(np.uint64) & ((np.uint64(1) << widths.astype(np.uint64)) - 1)
    data = bitpack.pack_bits(values, widths)
    assert len(data) == (widths.sum() + 7) // 8
    np.testing.assert_array_equal(bitpack.unpack_bits(data, widths, "t"), values)
    assert bitpack.pack_bits(np.asarray([5, 1]), 3) == bytes([0b10100100])  # MSB first, zero padded
    assert bitpack.pack_bits(np.asarray([]), 3) == b""


def test_unpack_bits_errors():
    with pytest.raises(CodecError, match="expected 1"):
        bitpack.unpack_bits(b"\x00\x00", np.full(2, 3), "t")
    with pytest.raises(CodecError, match="padding"):
        bitpack.unpack_bits(bytes([0b10100101]), np.full(2, 3), "t")

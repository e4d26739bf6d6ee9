"""Seeded mutation fuzzing of ``decode``: only ``CodecError`` (or a valid decode), fast.

Half the mutants get their section CRCs recomputed, so the header parser and
the entropy decoders see consistent garbage rather than stopping at the CRC.
"""

import collections
import struct
import time
import zlib

import jax.numpy as jnp
import numpy as np
import pytest

from gauss2d.codec import CodecError, CodecSettings, decode, encode
from gauss2d.gaussians import CholeskyParams

MUTANTS_PER_FILE = 2000
_FRAME = struct.Struct("<BII")


def _params(n, seed):
    rng = np.random.default_rng(seed)
    xy = np.arctanh(rng.uniform(-0.95, 0.95, (n, 2)))
    chol = rng.laplace([0.8, 0.0, 0.8], [0.3, 0.15, 0.3], (n, 3))
    color = rng.uniform(-0.2, 1.0, (6, 3))[rng.integers(0, 6, n)] + rng.normal(0, 0.05, (n, 3))
    return CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))


@pytest.fixture(scope="module")
def valid_files():
    small = CodecSettings(
        chol_bits=4, rvq_stages=3, codebook_size=5, codebook_dtype="float32", kmeans_iters=5
    )
    return [
        encode(_params(50, 0), 24, 32, mode="entropy"),
        encode(_params(200, 1), 40, 56, mode="entropy"),
        encode(_params(120, 2), 17, 29, mode="entropy", settings=small),
        encode(_params(100, 3), 40, 56, mode="gaussianimage"),
        encode(_params(60, 4), 31, 20, mode="gaussianimage", settings=small),
    ]


def _sections(data):
    """(frame start, payload end) of each parseable section frame."""
    pos, out = 5, []
    while pos + _FRAME.size <= len(data):
        _, length, _ = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if end > len(data):
            break
        out.append((pos, end))
        pos = end
    return out


def _fix_crcs(data):
    data = bytearray(data)
    for start, end in _sections(data):
        sid, length, _ = _FRAME.unpack_from(data, start)
        _FRAME.pack_into(data, start, sid, length, zlib.crc32(bytes(data[start + _FRAME.size : end])))
    return bytes(data)


def _mutate(data, rng):
    data = bytearray(data)
    kind = rng.choice(["flip", "byte", "truncate", "insert", "delete", "duplicate", "header", "payload"])
    n = len(data)
    if kind == "flip":
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(0, n)
            data[i] ^= 1 << rng.integers(0, 8)
    elif kind == "byte":
        data[rng.integers(0, n)] = rng.integers(0, 256)
    elif kind == "truncate":
        data = data[: rng.integers(0, n)]
    elif kind == "insert":
        i = rng.integers(0, n + 1)
        data[i:i] = rng.bytes(int(rng.integers(1, 9)))
    elif kind == "delete":
        i = rng.integers(0, n)
        del data[i : i + rng.integers(1, 9)]
    elif kind == "duplicate":  # a whole section twice
        start, end = _sections(bytes(data))[rng.integers(0, 4)]
        data[end:end] = data[start:end]
    elif kind == "header":  # a fixed header field (sizes, enums) set to an arbitrary value
        i = 5 + _FRAME.size + rng.integers(0, 24)
        data[i] = rng.choice([0, 1, 2, 255, rng.integers(0, 256)])
    else:  # bytes of an attribute payload: what the entropy decoder reads
        start, end = _sections(bytes(data))[rng.integers(1, 4)]
        if end - start > _FRAME.size:
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(start + _FRAME.size, end)] = rng.integers(0, 256)
    return kind, bytes(data)


def test_decode_fuzz(valid_files):
    rng = np.random.default_rng(20240917)
    messages = collections.Counter()
    valid = 0
    slowest = 0.0
    for data in valid_files:
        decode(data)  # the base files are valid
        for _ in range(MUTANTS_PER_FILE):
            kind, mutant = _mutate(data, rng)
            if rng.random() < 0.5:
                mutant = _fix_crcs(mutant)
            t0 = time.perf_counter()
            try:
                out = decode(mutant)
            except CodecError as e:
                message = str(e)
                # The catch-all in decode() means a check is missing: every error should be explicit.
                assert not message.startswith("corrupt gauss2d file:"), (kind, message)
                messages[message.split(" ")[0]] += 1
            else:
                valid += mutant != data  # a mutant that changed nothing is trivially valid
                n = out.params.xy.shape[0]
                assert out.params.chol.shape == (n, 3) and out.params.color.shape == (n, 3)
                assert all(np.isfinite(np.asarray(a)).all() for a in out.params)
                assert 1 <= out.height <= 65536 and 1 <= out.width <= 65536
            slowest = max(slowest, time.perf_counter() - t0)
    total = len(valid_files) * MUTANTS_PER_FILE
    assert slowest < 1.0, f"slowest decode took {slowest:.3f} s"
    # The fuzz must reach past the container checks, into headers and entropy decoding.
    shallow = sum(messages[w] for w in ("CRC", "truncated", "not", "unsupported", "section"))
    assert total - valid - shallow > 0.15 * total, messages.most_common(20)
    assert valid <= 0.005 * total  # the content checksum catches consistent garbage


def test_random_bytes_never_crash():
    rng = np.random.default_rng(1)
    for i in range(300):
        junk = rng.bytes(int(rng.integers(0, 400)))
        if i % 2:
            junk = b"G2D\x00\x01" + junk  # past the magic, into the section frames
        with pytest.raises(CodecError):
            decode(junk)

"""Seeded mutation fuzzing of ``decode`` over every format version: only ``CodecError`` (or a valid decode).

v1 files (framed sections, a CRC per section), v2 files (a section table,
one CRC of the file) and v3 files (records, a CRC per record; a prefix of
whole layers is a valid file) go through the one container and decoder. Half the
mutants get their CRCs recomputed, so the header parsers and the entropy
decoders see consistent garbage rather than stopping at the CRC.
"""

import collections
import struct
import time
import zlib

import numpy as np
import pytest
from codec_helpers import H, W, encode_v1, encode_v2, mutate, v1_settings, v2_settings
from codec_helpers import random_params as _params

from gauss2d import codec
from gauss2d.codec import CodecError, container, decode

MUTANTS_PER_FILE = 1500
_FRAME = struct.Struct("<BII")


def _v1_sections(data):
    """(frame start, payload end) of each parseable v1 section frame."""
    pos, out = 5, []
    while pos + _FRAME.size <= len(data):
        _, length, _ = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if end > len(data):
            break
        out.append((pos, end))
        pos = end
    return out


def _fix_v1(data):
    data = bytearray(data)
    for start, end in _v1_sections(data):
        sid, length, _ = _FRAME.unpack_from(data, start)
        _FRAME.pack_into(data, start, sid, length, zlib.crc32(bytes(data[start + _FRAME.size : end])))
    return bytes(data)


def _fix_v2(data):
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4])) if len(data) >= 4 else data


def _v1_layout(data):
    spans = _v1_sections(data)
    # The header's fixed fields, and the attribute payloads (past their frames).
    return (5 + _FRAME.size, 5 + _FRAME.size + 24), [(s + _FRAME.size, e) for s, e in spans[1:]]


def _v2_layout(data):
    # The section lengths and fixed header fields; the streams are past the header.
    return (5, 35), [(min(len(data) - 5, 100), len(data) - 4)]


@pytest.fixture(scope="module")
def valid_files():
    small = dict(chol_bits=4, rvq_stages=3, codebook_size=5, codebook_dtype="float32", kmeans_iters=5)
    v1 = [
        encode_v1(_params(50, 0), 24, 32, mode="entropy"),
        encode_v1(_params(200, 1), H, W, mode="entropy"),
        encode_v1(_params(120, 2), 17, 29, settings=v1_settings("entropy", **small)),
        encode_v1(_params(100, 3), H, W, mode="gaussianimage"),
        encode_v1(_params(60, 4), 31, 20, settings=v1_settings("gaussianimage", **small)),
    ]
    v2 = [
        encode_v2(_params(60, 0), 24, 32),
        encode_v2(_params(300, 1), H, W, settings=v2_settings("laplace", color_space="rgb", predict="on")),
        encode_v2(
            _params(150, 2), 17, 29, settings=v2_settings("categorical", predict="off", position_step=0.25)
        ),
        encode_v2(_params(120, 3), 24, 32, settings=v2_settings(cov_space="log")),
        encode_v2(_params(120, 4), 24, 32, settings=v2_settings(cov_space="log", color_by_size=True)),
    ]
    return {1: v1, 2: v2}


KINDS = {
    1: ("flip", "byte", "truncate", "insert", "delete", "duplicate", "header", "payload"),
    2: ("flip", "byte", "truncate", "insert", "delete", "header", "payload"),
}


@pytest.mark.parametrize("version", [1, 2])
def test_decode_fuzz(valid_files, version):
    rng = np.random.default_rng(20240917 + version)
    layout, fix = (_v1_layout, _fix_v1) if version == 1 else (_v2_layout, _fix_v2)
    messages = collections.Counter()
    valid = deep = 0
    slowest = 0.0
    files = valid_files[version]
    for data in files:
        assert decode(data).params.xy.shape[0] >= 1  # the base files are valid
        header, payloads = layout(data)
        for i in range(MUTANTS_PER_FILE):
            kind, mutant = mutate(data, rng, KINDS[version], header, payloads)
            fixed = i % 2 == 1  # half get valid CRCs: the parsers see consistent garbage
            if fixed:
                mutant = fix(mutant)
            t0 = time.perf_counter()
            try:
                out = decode(mutant)
            except CodecError as e:
                message = str(e)
                # The catch-all in decode() means a check is missing: every error should be explicit.
                assert not message.startswith("corrupt gauss2d file:"), (kind, message)
                messages[message.split(" ")[0]] += 1
                deep += fixed and "CRC" not in message
            else:
                assert fixed or mutant == data, kind  # the CRCs catch every unfixed damage
                valid += mutant != data
                n = out.params.xy.shape[0]
                assert out.params.chol.shape == (n, 3) and out.params.color.shape == (n, 3)
                assert all(np.isfinite(np.asarray(a)).all() for a in out.params)
                assert 1 <= out.height <= 65536 and 1 <= out.width <= 65536
            slowest = max(slowest, time.perf_counter() - t0)
    total = len(files) * MUTANTS_PER_FILE
    assert slowest < 1.0, f"slowest decode took {slowest:.3f} s"
    # The fuzz must reach past the container checks, into headers and entropy decoding.
    assert deep > 0.2 * total / 2, messages.most_common(20)
    if version == 1:  # v1's content checksum catches consistent garbage; v2 has only the file CRC
        assert valid <= 0.005 * total


@pytest.mark.parametrize("version", [1, 2])
def test_random_bytes_never_crash(version):
    rng = np.random.default_rng(version)
    for i in range(300):
        junk = rng.bytes(int(rng.integers(0, 400)))
        if i % 2:
            junk = container.preamble(version) + junk  # past the magic, into the sections
            junk = _fix_v2(junk) if version == 2 else junk
        with pytest.raises(CodecError):
            decode(junk)


# ----------------------------------------------------------------------------- version 3


def _v3_records(data):
    """(payload start, payload end) of each complete record of a v3 file."""
    pos, out = container.PREAMBLE, []
    while pos < len(data):
        try:
            length, start = container.get_varint(data, pos, len(data) - pos, "record")
        except CodecError:
            break
        if start + length + 4 > len(data):
            break
        out.append((start, start + length))
        pos = start + length + 4
    return out


def _fix_v3(data):
    data = bytearray(data)
    for start, end in _v3_records(bytes(data)):
        struct.pack_into("<I", data, end, zlib.crc32(bytes(data[start:end])))
    return bytes(data)


def _v3_layout(data):
    spans = _v3_records(data)
    return spans[0], spans[1:]


@pytest.fixture(scope="module")
def v3_files():
    def v3(n, seed, h, w, **changes):
        s = codec.format_settings(3, **{"cov_space": "log", "color_by_size": True, **changes})
        return codec.encode(_params(n, seed, h, w), h, w, version=3, settings=s)

    return [
        v3(60, 0, 24, 32),
        v3(300, 1, H, W, layers=3, color_space="rgb"),
        v3(150, 2, 17, 29, layers=4, position_step=0.25, entropy_model="categorical"),
        v3(120, 3, 24, 32, cov_space="cholesky", color_by_size=False, layers=2),
    ]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_decode_fuzz_v3(v3_files):
    rng = np.random.default_rng(20261207)
    kinds = ("flip", "byte", "truncate", "insert", "delete", "duplicate", "header", "payload")
    messages = collections.Counter()
    deep = 0
    slowest = 0.0
    for data in v3_files:
        full = decode(data)
        header, payloads = _v3_layout(data)
        for i in range(MUTANTS_PER_FILE):
            kind, mutant = mutate(data, rng, kinds, header, payloads)
            fixed = i % 2 == 1
            if fixed:
                mutant = _fix_v3(mutant)
            t0 = time.perf_counter()
            try:
                out = decode(mutant)
            except CodecError as e:
                message = str(e)
                assert not message.startswith("corrupt gauss2d file:"), (kind, message)
                messages[message.split(" ")[0]] += 1
                deep += fixed and "CRC" not in message
            else:
                n = out.params.xy.shape[0]
                assert all(np.isfinite(np.asarray(a)).all() for a in out.params)
                assert out.params.chol.shape == (n, 3) and 1 <= out.layers <= out.total_layers
                # Unfixed damage decodes only where it reads as a cut file (the last record's length
                # runs past the end): then exactly a strict prefix of the original layers.
                if not fixed and mutant != data:
                    assert out.layers < full.total_layers, kind
                    for a, b in zip(out.params, full.params, strict=True):
                        np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[:n])
            slowest = max(slowest, time.perf_counter() - t0)
    assert slowest < 1.0, f"slowest decode took {slowest:.3f} s"
    assert deep > 0.2 * len(v3_files) * MUTANTS_PER_FILE / 2, messages.most_common(20)


def test_random_bytes_never_crash_v3():
    rng = np.random.default_rng(3)
    for _ in range(300):
        junk = container.preamble(3) + rng.bytes(int(rng.integers(0, 400)))
        with pytest.raises(CodecError):
            decode(_fix_v3(junk))

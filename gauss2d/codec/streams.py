"""Signed integer streams under a probability model stored with them (format version 2).

A stream codes ``M`` signed integers (the count is known to the decoder) as::

    kind u8 | zigzag varint lo | varint size | body

``size`` values ``lo .. lo + size - 1`` form the alphabet (at most 2^16). The
body depends on ``kind``:

* ``KIND_CATEGORICAL`` (0): ``values - lo`` with v1's per-stream adaptive
  histogram (``entropy.encode_symbols``: quantised counts, then ANS words; a
  fixed-length fallback when that does not pay).
* ``KIND_LAPLACE`` (1): ``mu f32 | scale f32 | ANS words``: a Laplace
  distribution of location ``mu`` and scale ``scale`` integrated over each
  unit bin ``[k - 1/2, k + 1/2]`` and renormalised over the alphabet; both
  sides build the probabilities with the same float64 NumPy code from the
  same stored float32s (``laplace_pmf``), so they build the same model.
  With ``size == 1`` there are no words.

The encoder codes each stream both ways (the Laplace scale searched for the
fewest bits) and keeps the smaller, so a stream never costs more than v1's
categorical coding plus three bytes. ``laplace_bits`` is the same code length
in JAX, differentiable in the values (gauss2d/codec/rate.py builds on it).
"""

from __future__ import annotations

import struct

import constriction
import numpy as np

from gauss2d.codec import entropy
from gauss2d.codec.container import CodecError, get_varint, join_inline, put_varint, split_inline

KIND_CATEGORICAL, KIND_LAPLACE = 0, 1
KINDS = ("categorical", "laplace")
MAX_ALPHABET = 2**16
# A stored Laplace scale must lie here: below, every probability but one
# rounds to the floor; above, the model is flat over any allowed alphabet.
MIN_SCALE, MAX_SCALE = 1e-3, 1e6
# Probability floor of a symbol inside the alphabet: keeps every symbol
# codable (constriction's categorical is leaky anyway) and -log2 p bounded.
PMF_FLOOR = 1e-9
_LAPLACE_PARAMS = struct.Struct("<ff")
_SLACK_BITS = 96  # ANS flushes up to one 32-bit word; 24-bit probabilities round


def zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def unzigzag(u: int) -> int:
    return u // 2 if u % 2 == 0 else -(u + 1) // 2


def laplace_pmf(lo: int, size: int, mu: float, scale: float) -> np.ndarray:
    """[size] probabilities of ``lo .. lo + size - 1`` under a unit-bin discretised Laplace.

    Float64 from the float32 parameters, floored at ``PMF_FLOOR`` and
    renormalised: the encoder and the decoder call exactly this.
    """
    mu, scale = float(np.float32(mu)), float(np.float32(scale))
    k = lo + np.arange(size, dtype=np.float64)

    def cdf(x):
        z = (x - mu) / scale
        return np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0.0)), 1.0 - 0.5 * np.exp(-np.maximum(z, 0.0)))

    p = cdf(k + 0.5) - cdf(k - 0.5)
    p = np.maximum(p, PMF_FLOOR)
    return p / p.sum()


def _ideal_bits(values: np.ndarray, lo: int, size: int, mu: float, scale: float) -> float:
    p = laplace_pmf(lo, size, mu, scale)
    return float(-np.log2(p[values - lo]).sum())


def fit_laplace(values: np.ndarray, lo: int, size: int) -> tuple[float, float]:
    """(mu, scale) as float32 values minimising the discretised code length.

    mu is the median (the Laplace MLE); the scale is searched on a log grid
    around the mean absolute deviation (the continuous MLE is off for
    integer data with a small spread).
    """
    mu = float(np.float32(np.median(values)))
    mad = max(float(np.mean(np.abs(values - mu))), MIN_SCALE)
    best = None
    for f in 2.0 ** (np.arange(-24, 13) / 4.0):
        scale = float(np.float32(np.clip(mad * f, MIN_SCALE, MAX_SCALE)))
        bits = _ideal_bits(values, lo, size, mu, scale)
        if best is None or bits < best[0]:
            best = (bits, scale)
    return mu, best[1]


def _laplace_model(lo: int, size: int, mu: float, scale: float):
    return constriction.stream.model.Categorical(laplace_pmf(lo, size, mu, scale), perfect=False)


def encode_stream(values: np.ndarray, kind: str | None = None) -> bytes:
    """Codes signed ints ``values: [M]`` (M >= 1); ``kind`` None picks the smaller coding.

    Raises:
      ValueError: an empty stream, or a value range wider than ``MAX_ALPHABET``.
    """
    values = np.asarray(values, np.int64).reshape(-1)
    if values.size == 0:
        raise ValueError("a stream holds at least one value")
    lo, hi = int(values.min()), int(values.max())
    size = hi - lo + 1
    if size > MAX_ALPHABET:
        raise ValueError(f"values span [{lo}, {hi}]: more than {MAX_ALPHABET} symbols")
    prefix = put_varint(zigzag(lo)) + put_varint(size)
    out = []
    if kind in (None, "categorical"):
        out.append(bytes([KIND_CATEGORICAL]) + prefix + entropy.encode_symbols(values - lo, size))
    if kind in (None, "laplace"):
        mu, scale = fit_laplace(values, lo, size)
        body = _LAPLACE_PARAMS.pack(mu, scale)
        if size > 1:
            coder = constriction.stream.stack.AnsCoder()
            coder.encode_reverse((values - lo).astype(np.int32), _laplace_model(lo, size, mu, scale))
            body += coder.get_compressed().astype("<u4").tobytes()
        out.append(bytes([KIND_LAPLACE]) + prefix + body)
    if not out:
        raise ValueError(f"unknown stream {kind=}; expected one of {KINDS} or None")
    return min(out, key=len)


def stream_kind(data: bytes) -> str:
    """The model kind of an encoded stream (for reports)."""
    return KINDS[data[0]]


def decode_stream(data: bytes, count: int, what: str) -> np.ndarray:
    """Inverse of ``encode_stream``: [count] int64.

    Raises:
      CodecError: an unknown kind, an alphabet over ``MAX_ALPHABET``, model
        parameters out of range, a payload inconsistent with ``count``, or
        words left after the last symbol.
    """
    if not data:
        raise CodecError(f"{what}: empty stream")
    kind = data[0]
    if kind not in (KIND_CATEGORICAL, KIND_LAPLACE):
        raise CodecError(f"{what}: unknown stream model kind {kind}")
    u, pos = get_varint(data, 1, 2 * MAX_SCALE_INDEX, f"{what} lowest symbol")
    lo = unzigzag(u)
    size, pos = get_varint(data, pos, MAX_ALPHABET, f"{what} alphabet size")
    if size < 1:
        raise CodecError(f"{what}: alphabet size 0")
    if kind == KIND_CATEGORICAL:
        return entropy.decode_symbols(data[pos:], count, size) + lo
    if len(data) - pos < _LAPLACE_PARAMS.size:
        raise CodecError(f"{what}: truncated Laplace parameters")
    mu, scale = _LAPLACE_PARAMS.unpack_from(data, pos)
    payload = data[pos + _LAPLACE_PARAMS.size :]
    if not (np.isfinite(mu) and abs(mu) <= MAX_SCALE_INDEX):
        raise CodecError(f"{what}: Laplace location {mu} out of range")
    if not (np.isfinite(scale) and MIN_SCALE * 0.99 <= scale <= MAX_SCALE):
        raise CodecError(f"{what}: Laplace scale {scale} out of [{MIN_SCALE}, {MAX_SCALE}]")
    if size == 1:
        if payload:
            raise CodecError(f"{what}: single-symbol stream carries a payload")
        return np.full(count, lo, np.int64)
    if len(payload) % 4 or not payload:
        raise CodecError(f"{what}: payload of {len(payload)} bytes is not a non-empty whole number of words")
    p = laplace_pmf(lo, size, mu, scale)
    min_bits = count * -np.log2(p.max())
    if min_bits > 8 * len(payload) + _SLACK_BITS:  # checked before allocating count symbols
        raise CodecError(
            f"{what}: {count} symbols need >= {min_bits:.0f} bits; payload has {8 * len(payload)}"
        )
    try:
        coder = constriction.stream.stack.AnsCoder(np.frombuffer(payload, "<u4").astype(np.uint32))
        sym = np.asarray(coder.decode(constriction.stream.model.Categorical(p, perfect=False), count))
        empty = coder.is_empty()
    except Exception as e:  # constriction raises on corrupt words
        raise CodecError(f"{what}: corrupt entropy-coded payload: {e}") from e
    if not empty:
        raise CodecError(f"{what}: payload has data left after the last symbol")
    if sym.shape != (count,) or sym.min() < 0 or sym.max() >= size:
        raise CodecError(f"{what}: decoder produced out-of-range symbols")
    return sym.astype(np.int64) + lo


# Symbols are indices of signed quantisers clipped to +-MAX_SCALE_INDEX (codec/v2/header.py MAX_INDEX),
# and predicted residuals of them: |lo| <= 2 * MAX_SCALE_INDEX.
MAX_SCALE_INDEX = 2**16


def streams_section(streams: list[bytes]) -> bytes:
    """Concatenates encoded streams, each prefixed with its byte length (varint)."""
    return join_inline(streams)


def split_streams(data: bytes, num_streams: int, what: str) -> list[bytes]:
    """Inverse of ``streams_section``; the section must be consumed exactly."""
    return split_inline(data, num_streams, what)

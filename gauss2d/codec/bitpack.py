"""Fixed-width bit packing: v1's gaussianimage layout and the positions' raw mantissa bits."""

from __future__ import annotations

import numpy as np

from gauss2d.codec.container import check as _check


def pack_bits(values: np.ndarray, widths: np.ndarray) -> bytes:
    """Concatenates each value's low ``width`` bits, MSB first, zero-padded to bytes.

    Args:
      values: [M] non-negative ints (< 2^63).
      widths: [M] bit widths in [0, 63] (or a scalar for fixed-length fields).
    """
    values = np.asarray(values, np.uint64).reshape(-1)
    widths = np.broadcast_to(np.asarray(widths, np.int64), values.shape)
    total = int(widths.sum())
    bits = np.zeros(total, np.uint8)
    starts = np.cumsum(widths) - widths
    for j in range(int(widths.max(initial=0))):  # one vectorised pass per bit position
        live = widths > j
        shift = (widths[live] - 1 - j).astype(np.uint64)
        bits[starts[live] + j] = (values[live] >> shift) & np.uint64(1)
    return np.packbits(bits).tobytes()


def unpack_bits(data: bytes, widths: np.ndarray, what: str) -> np.ndarray:
    """Inverse of ``pack_bits``; ``data`` must hold exactly the padded bits.

    Raises:
      CodecError: if ``data`` is not exactly ceil(sum(widths) / 8) bytes or the
        padding bits are not zero.
    """
    widths = np.asarray(widths, np.int64).reshape(-1)
    total = int(widths.sum())
    _check(len(data) == (total + 7) // 8, f"{what}: {len(data)} bytes, expected {(total + 7) // 8}")
    bits = np.unpackbits(np.frombuffer(data, np.uint8))
    _check(not bits[total:].any(), f"{what}: non-zero padding bits")
    wmax = int(widths.max(initial=0))
    out = np.zeros(widths.shape, np.uint64)
    if wmax == 0:
        return out
    starts = np.cumsum(widths) - widths
    for j in range(wmax):  # one vectorised pass per bit position: wmax <= 63
        live = widths > j
        out[live] = (out[live] << np.uint64(1)) | bits[starts[live] + j].astype(np.uint64)
    return out

"""Per-image adaptive entropy coding with constriction's ANS coder.

A symbol stream is stored self-contained as ``model | payload``:

* model: a quantised histogram. 4 bits ``k``, then for every symbol of the
  alphabet its quantised count ``q >= 0`` as an order-``k`` exp-Golomb code,
  zero-padded to a byte. ``q = max(1, round(count / 2^j))`` for symbols that
  occur (so a symbol that occurs never gets probability 0) and 0 otherwise;
  the encoder picks ``(j, k)`` minimising model bits + ideal data bits (an MDL
  choice: a tiny image gets a coarse histogram, a big one a fine one). The
  shift ``j`` is not stored: both sides use ``q / sum(q)`` in float64 over the
  symbols with ``q > 0``, from the same integers, so they build the same model.
* payload: constriction ANS words (uint32, little-endian) coding each symbol's
  rank among the present symbols; empty when only one symbol is present.

When that would not beat fixed-length coding (near-uniform symbols), the
stream is instead the 4-bit marker ``RAW_MARKER`` followed by each symbol in
``ceil(log2(alphabet_size))`` bits, so entropy mode never costs more than
fixed-length coding plus 4 bits per stream.

Positions are coded as a *set* (DESIGN.md section 5): sorted raster keys of
the quantised grid cells, gaps coded as an Elias-gamma-like split - the
exponent and the leading mantissa bit form an entropy-coded symbol, the
remaining mantissa bits are raw. Sorting removes the order, ~log2(N!) bits.
"""

from __future__ import annotations

import constriction
import numpy as np

from gauss2d.codec.bitpack import pack_bits, unpack_bits
from gauss2d.codec.container import CodecError, get_varint, join_inline, put_varint, split_inline

MAX_ALPHABET = 2**16
MAX_QCOUNT = 2**24  # constriction's categorical precision is 24 bits
_MAX_K = 14
RAW_MARKER = 15  # in place of k: the stream is stored fixed-length
# Slack (bits) in the check "declared count vs. payload size": ANS flushes up to
# one 32-bit word of state, and constriction's 24-bit probabilities differ from
# the float ones by at most 2^-24.
_SLACK_BITS = 96


def _eg_lengths(q: np.ndarray, k: int) -> np.ndarray:
    """Bit length of order-k exp-Golomb codes of ``q >= 0``."""
    n = np.frexp((q + (1 << k)).astype(np.float64))[1]  # bit length, exact below 2^53
    return 2 * n - k - 1


def _quantised_counts(counts: np.ndarray) -> tuple[np.ndarray, int]:
    """Picks (q, k) minimising model bits + ideal data bits for ``counts: [A]``."""
    present = counts > 0
    best = None
    for j in range(25):
        q = np.where(present, np.maximum(1, (counts + (1 << j >> 1)) >> j), 0)
        if q.max() > MAX_QCOUNT:
            continue
        p = q[present] / q.sum()
        data_bits = -np.sum(counts[present] * np.log2(p))
        for k in range(_MAX_K + 1):
            cost = data_bits + 4 + _eg_lengths(q, k).sum()
            if best is None or cost < best[0]:
                best = (cost, q, k)
        if q[present].max() == 1:  # coarser shifts change nothing
            break
    return best[1], best[2]


def histogram_model(counts: np.ndarray) -> tuple[np.ndarray, bytes]:
    """(quantised counts q [A], the stored histogram bytes) of symbol ``counts: [A]`` (MDL choice)."""
    q, k = _quantised_counts(np.asarray(counts, np.int64))
    return q, pack_bits(np.concatenate([[k], q + (1 << k)]), np.concatenate([[4], _eg_lengths(q, k)]))


def read_histogram(data: bytes, alphabet_size: int) -> tuple[np.ndarray, int]:
    """Inverse of ``histogram_model``'s bytes: (q [A] int64, bytes read); CodecError if malformed."""
    return _read_model(data, alphabet_size)


def _model(q: np.ndarray) -> constriction.stream.model.Categorical:
    p = q[q > 0].astype(np.float64)
    return constriction.stream.model.Categorical(p / p.sum(), perfect=False)


def _read_model(data: bytes, alphabet_size: int) -> tuple[np.ndarray, int]:
    """Parses the histogram; returns (q [A] int64, byte offset of the payload)."""
    nbits = 8 * len(data)
    pos = 0

    def bit() -> int:
        nonlocal pos
        if pos >= nbits:
            raise CodecError("truncated entropy model")
        b = (data[pos >> 3] >> (7 - (pos & 7))) & 1
        pos += 1
        return b

    k = 0
    for _ in range(4):
        k = (k << 1) | bit()
    q = np.zeros(alphabet_size, np.int64)
    for i in range(alphabet_size):
        zeros = 0
        while bit() == 0:
            zeros += 1
            if zeros > 25:
                raise CodecError("entropy model count too large")
        w = 1
        for _ in range(zeros + k):
            w = (w << 1) | bit()
        q[i] = w - (1 << k)
        if q[i] > MAX_QCOUNT:
            raise CodecError(f"entropy model count {q[i]} exceeds {MAX_QCOUNT}")
    end = (pos + 7) >> 3
    if pos & 7 and data[end - 1] & ((1 << (8 - (pos & 7))) - 1):
        raise CodecError("entropy model: non-zero padding bits")
    if not q.any():
        raise CodecError("entropy model has no symbol with a non-zero count")
    return q, end


def encode_symbols(symbols: np.ndarray, alphabet_size: int) -> bytes:
    """Entropy-codes integer symbols with a per-stream adaptive categorical model.

    Args:
      symbols: [M] ints in [0, alphabet_size).
      alphabet_size: number of possible symbols (<= 2^16).

    Returns:
      ``model | payload`` bytes (empty when M == 0); the count M is not stored.

    Raises:
      ValueError: on a symbol out of range or an alphabet too large.
    """
    symbols = np.asarray(symbols).reshape(-1)
    if not 1 <= alphabet_size <= MAX_ALPHABET:
        raise ValueError(f"{alphabet_size=} must be in [1, {MAX_ALPHABET}]")
    if symbols.size == 0:
        return b""
    if symbols.min() < 0 or symbols.max() >= alphabet_size:
        raise ValueError(f"symbols must lie in [0, {alphabet_size}); got [{symbols.min()}, {symbols.max()}]")
    counts = np.bincount(symbols.astype(np.int64), minlength=alphabet_size)
    q, k = _quantised_counts(counts)
    # An order-k code is (n - k - 1) zeros then the n-bit value q + 2^k; writing
    # q + 2^k in (n - k - 1) + n bits puts exactly those leading zeros in front.
    model = pack_bits(np.concatenate([[k], q + (1 << k)]), np.concatenate([[4], _eg_lengths(q, k)]))
    present = np.flatnonzero(q)
    if present.size == 1:
        return model
    rank = np.searchsorted(present, symbols).astype(np.int32)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(rank, _model(q))
    coded = model + coder.get_compressed().astype("<u4").tobytes()
    width = (alphabet_size - 1).bit_length()
    if len(coded) < (4 + width * symbols.size + 7) // 8:
        return coded
    return pack_bits(np.concatenate([[RAW_MARKER], symbols]), np.r_[4, np.full(symbols.size, width)])


def decode_symbols(data: bytes, count: int, alphabet_size: int) -> np.ndarray:
    """Inverse of ``encode_symbols``; never returns a symbol the model excludes.

    Args:
      data: exactly the bytes ``encode_symbols`` produced.
      count: number of symbols M to decode.
      alphabet_size: as given to the encoder.

    Returns:
      [M] int64 symbols.

    Raises:
      CodecError: on a malformed model, a payload inconsistent with ``count``,
        constriction rejecting the words, or words left over after decoding.
    """
    if not 1 <= alphabet_size <= MAX_ALPHABET:
        raise CodecError(f"alphabet_size={alphabet_size} must be in [1, {MAX_ALPHABET}]")
    if count == 0:
        if data:
            raise CodecError(f"{len(data)} bytes for an empty symbol stream")
        return np.zeros(0, np.int64)
    if data and data[0] >> 4 == RAW_MARKER:
        return _decode_raw(data, count, alphabet_size)
    q, start = _read_model(data, alphabet_size)
    present = np.flatnonzero(q)
    payload = data[start:]
    if present.size == 1:
        if payload:
            raise CodecError("single-symbol stream carries a payload")
        return np.full(count, present[0], np.int64)
    if len(payload) % 4 or not payload:
        raise CodecError(f"entropy payload of {len(payload)} bytes is not a non-empty whole number of words")
    # Every symbol costs at least -log2(p_max) bits: a count the payload cannot
    # hold is corrupt, and is rejected before decoding (and allocating) it.
    min_bits = count * -np.log2(q.max() / q.sum())
    if min_bits > 8 * len(payload) + _SLACK_BITS:
        raise CodecError(f"{count} symbols need >= {min_bits:.0f} bits; payload has {8 * len(payload)}")
    try:
        coder = constriction.stream.stack.AnsCoder(np.frombuffer(payload, "<u4").astype(np.uint32))
        rank = np.asarray(coder.decode(_model(q), count))
        empty = coder.is_empty()
    except Exception as e:  # constriction raises ValueError / others on corrupt words
        raise CodecError(f"corrupt entropy-coded payload: {e}") from e
    if not empty:
        raise CodecError("entropy-coded payload has data left after the last symbol")
    if rank.shape != (count,) or rank.min() < 0 or rank.max() >= present.size:
        raise CodecError("entropy decoder produced out-of-range symbols")
    return present[rank.astype(np.int64)]


def _decode_raw(data: bytes, count: int, alphabet_size: int) -> np.ndarray:
    width = (alphabet_size - 1).bit_length()
    expected = (4 + width * count + 7) // 8
    if len(data) != expected:  # checked before unpacking (and allocating for) count symbols
        raise CodecError(f"fixed-length stream of {count} symbols is {len(data)} bytes, expected {expected}")
    symbols = unpack_bits(data, np.r_[4, np.full(count, width)], "fixed-length symbols")[1:]
    if symbols.size and symbols.max() >= alphabet_size:
        raise CodecError(f"symbol {symbols.max()} out of the alphabet [0, {alphabet_size})")
    return symbols.astype(np.int64)


def symbols_section(streams: list[tuple[np.ndarray, int]]) -> bytes:
    """Several symbol streams, each prefixed with its byte length (varint)."""
    return join_inline([encode_symbols(symbols, alphabet_size) for symbols, alphabet_size in streams])


def read_symbols_section(data: bytes, count: int, alphabets: list[int], what: str) -> list[np.ndarray]:
    """Inverse of ``symbols_section``; the section must be consumed exactly."""
    blobs = split_inline(data, len(alphabets), what)
    return [decode_symbols(blob, count, k) for blob, k in zip(blobs, alphabets, strict=True)]


# ----------------------------------------------------------------------------- positions as a set


def gap_alphabet(num_cells: int) -> int:
    """Size of the gap-symbol alphabet of a grid of ``num_cells`` cells."""
    emax = int(num_cells).bit_length() - 1  # gap + 1 <= num_cells
    return 2 * emax + 1


def position_symbols(keys: np.ndarray, num_cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gaps of sorted grid keys split as ``encode_positions`` codes them.

    Args:
      keys: [N] ints in [0, num_cells), sorted ascending (duplicates allowed).
      num_cells: grid size (<= 2^52).

    Returns:
      (symbols [N] in [0, ``gap_alphabet(num_cells)``), raw mantissa [N] uint64, raw widths [N]).
    """
    keys = np.asarray(keys, np.int64)
    if keys.size and (keys[0] < 0 or keys[-1] >= num_cells or np.any(np.diff(keys) < 0)):
        raise ValueError("keys must be sorted and lie in [0, num_cells)")
    v = (np.diff(keys, prepend=0) + 1).astype(np.uint64)  # gap + 1 >= 1
    e = np.frexp(v.astype(np.float64))[1].astype(np.int64) - 1  # floor(log2 v)
    top = np.where(e > 0, (v >> np.maximum(e - 1, 0).astype(np.uint64)) & np.uint64(1), 0).astype(np.int64)
    sym = np.where(e > 0, 2 * e - 1 + top, 0)
    width = np.maximum(e - 1, 0)
    raw = v & ((np.uint64(1) << width.astype(np.uint64)) - np.uint64(1))
    return sym, raw, width


def raw_widths(symbols: np.ndarray) -> np.ndarray:
    """[N] raw mantissa widths of gap symbols (the decoder's side of ``position_symbols``)."""
    return np.maximum((np.asarray(symbols, np.int64) + 1) // 2 - 1, 0)


def keys_from_symbols(sym: np.ndarray, raw: np.ndarray, num_cells: int) -> np.ndarray:
    """Inverse of ``position_symbols``: [N] sorted int64 keys (CodecError past the grid)."""
    count = sym.shape[0]
    e = (sym + 1) // 2
    top = (sym + 1) % 2
    width = np.maximum(e - 1, 0)
    v = (np.uint64(1) << e.astype(np.uint64)) | (top.astype(np.uint64) << width.astype(np.uint64)) | raw
    v = np.where(e > 0, v, np.uint64(1))
    # Guard the exact integer sum against overflow with a float estimate first.
    if v.astype(np.float64).sum() > num_cells + count + 1:
        raise CodecError("position gaps run past the end of the grid")
    keys = (np.cumsum(v) - np.arange(1, count + 1, dtype=np.uint64)).astype(np.int64)
    if count and keys[-1] >= num_cells:
        raise CodecError(f"position key {keys[-1]} is past the grid ({num_cells} cells)")
    return keys


def encode_positions(keys: np.ndarray, num_cells: int) -> bytes:
    """Codes a multiset of grid keys, order discarded.

    Args:
      keys: [N] ints in [0, num_cells), sorted ascending (duplicates allowed).
      num_cells: grid size (<= 2^52).

    Returns:
      ``varint(len(symbols)) | symbols | raw mantissa bits``.
    """
    sym, raw, width = position_symbols(keys, num_cells)
    blob = encode_symbols(sym, gap_alphabet(num_cells))
    return put_varint(len(blob)) + blob + pack_bits(raw, width)


def decode_positions(data: bytes, count: int, num_cells: int) -> np.ndarray:
    """Inverse of ``encode_positions``: [count] sorted int64 keys in [0, num_cells).

    Raises:
      CodecError: on any inconsistency (lengths, widths, keys past the grid).
    """
    length, pos = get_varint(data, 0, len(data), "position symbols length")
    sym = decode_symbols(data[pos : pos + length], count, gap_alphabet(num_cells))
    raw = unpack_bits(data[pos + length :], raw_widths(sym), "position mantissa bits")
    return keys_from_symbols(sym, raw, num_cells)

"""Version 3's context models: a stream split by a context the decoder derives from decoded data.

A context is a small integer per Gaussian that the decoder knows before it
decodes the attribute it conditions; the attribute's channels are then coded
as one stream per (context bucket, channel), each under its own model, in
the one coder of the layer. Two contexts:

* **colour given size**: the Gaussian's integer size octave
  (``cov_space.size_octaves`` of the *decoded* covariance);
* **covariance given local density**: ``bit_length`` of the number of the
  layer's Gaussians in the same block of ``2^b x 2^b`` grid cells (from the
  decoded positions; exact integers).

Buckets are given by ``edges`` (strictly increasing ints; bucket =
number of edges <= the context). The spec is stored in the layer's models
bytes just before the streams it splits::

    varint num_edges | (density only, if num_edges: block_log2 u8) | num_edges x zigzag varint edge

The encoder tries a few specs and keeps the one of fewest bits, so a
context that does not pay on a file costs one byte (``num_edges = 0``).
"""

from __future__ import annotations

import numpy as np

from gauss2d.codec.container import check, put_varint
from gauss2d.codec.cov_space import size_octaves
from gauss2d.codec.streams import unzigzag, zigzag
from gauss2d.codec.v3.models import LayerReader, LayerWriter, stream_cost

MAX_EDGES = 7
MAX_BLOCK_LOG2 = 16
BLOCK_LOG2_TRIED = (3, 4, 5, 6)  # blocks of 2^b grid cells (1-8 px at the 1/8 px grid)
BUCKETS_TRIED = (1, 2, 3, 4)


def size_context(chol_decoded: np.ndarray) -> np.ndarray:
    """[N] int64 size octaves of decoded raw Cholesky factors [N, 3]."""
    return size_octaves(chol_decoded).astype(np.int64)


def density_context(cells: np.ndarray, block_log2: int) -> np.ndarray:
    """[N] bit_length of how many of ``cells`` [N, 2] share each one's block of 2^b x 2^b cells."""
    blocks = np.asarray(cells, np.int64) >> block_log2
    key = blocks[:, 1] * (int(blocks[:, 0].max(initial=0)) + 1) + blocks[:, 0]
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return np.frexp(counts[inverse].astype(np.float64))[1].astype(np.int64)  # bit_length, exact


def buckets(context: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges, np.int64), context, side="right")


def _quantile_edges(context: np.ndarray, k: int) -> tuple[int, ...]:
    """Up to k - 1 edges splitting ``context`` into buckets of similar counts."""
    if k <= 1:
        return ()
    qs = np.quantile(context, np.arange(1, k) / k, method="higher")
    edges = sorted({int(q) for q in qs if q > context.min()})
    return tuple(edges)


def split_cost(q: np.ndarray, bucket: np.ndarray) -> float:
    """Bits of coding q [N, C] as one stream per (bucket, channel)."""
    return sum(stream_cost(q[bucket == b, c]) for b in np.unique(bucket) for c in range(q.shape[1]))


def choose_edges(q: np.ndarray, context: np.ndarray, enabled: bool) -> tuple[tuple[int, ...], float]:
    """(edges, bits) of the bucketing of ``context`` that codes ``q`` [N, C] in the fewest bits."""
    best = ((), split_cost(q, np.zeros(len(q), np.int64)))
    if not enabled:
        return best
    for k in BUCKETS_TRIED[1:]:
        edges = _quantile_edges(context, k)
        if not edges or edges == best[0]:
            continue
        bits = split_cost(q, buckets(context, edges)) + 8 * len(_spec_bytes(edges, 0))
        if bits < best[1]:
            best = (edges, bits)
    return best


def _spec_bytes(edges: tuple[int, ...], block_log2: int | None) -> bytes:
    out = put_varint(len(edges))
    if edges and block_log2 is not None:
        out += bytes([block_log2])
    return out + b"".join(put_varint(zigzag(e)) for e in edges)


def write_split(writer: LayerWriter, q: np.ndarray, bucket: np.ndarray, num_buckets: int, what: str) -> None:
    """The streams of ``q`` [N, C]: bucket by bucket (empty ones skipped), channel by channel."""
    for b in range(num_buckets):
        rows = q[bucket == b]
        for c in range(q.shape[1]):
            if rows.size:
                writer.add(rows[:, c], what)


def read_split(reader: LayerReader, bucket: np.ndarray, num_buckets: int, channels: int, what: str):
    """Inverse of ``write_split``: [N, channels] int64."""
    out = np.zeros((bucket.shape[0], channels), np.int64)
    for b in range(num_buckets):
        rows = np.flatnonzero(bucket == b)
        for c in range(channels):
            if rows.size:
                out[rows, c] = reader.read(rows.size, what)
    return out


def write_spec(writer: LayerWriter, edges: tuple[int, ...], block_log2: int | None, what: str) -> None:
    writer.add_bytes(_spec_bytes(edges, block_log2), what)


def read_spec(reader: LayerReader, density: bool, what: str) -> tuple[tuple[int, ...], int]:
    """(edges, block_log2) of a context spec (CodecError unless strictly increasing and bounded)."""
    count = reader.varint(MAX_EDGES, f"{what} context edges")
    block_log2 = 0
    if count and density:
        block_log2 = reader.byte(f"{what} block size")
        check(block_log2 <= MAX_BLOCK_LOG2, f"{what} context block 2^{block_log2} too large")
    edges = tuple(unzigzag(reader.varint(2**12, f"{what} context edge")) for _ in range(count))
    check(all(a < b for a, b in zip(edges, edges[1:])), f"{what} context edges {edges} not increasing")
    return edges, block_log2

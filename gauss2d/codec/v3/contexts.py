"""Version 3's context models: a stream split by a context the decoder derives from decoded data.

A context is a small integer per Gaussian that the decoder knows before it
decodes the attribute it conditions; the attribute's channels are then coded
as one stream per (context bucket, channel), each under its own model, in
the one coder of the layer. Two contexts:

* **colour given size**: the Gaussian's integer size octave
  (``cov_space.size_octaves`` of the *decoded* covariance);
* **covariance shape given its first channel**: covariance channels 1 and 2
  (shear, log l22 in the log space) given the decoded index of channel 0.

Covariance given local density (bit_length of the number of the layer's
Gaussians in its block of 2^b x 2^b cells, b = 3 .. 6) was measured first
(commit 7998d2a): on the kodim01-03 fits at N = 200 / 750 / 2250 it saved
nothing on 7 of 9 and at most 37 bytes (0.13 bits/Gaussian, kodim02 at
2250); the shape context above saves 0.2-0.7 bits/Gaussian at 2250 on the
same fits, so it replaced it (benchmarks/RESULTS.md, "codec v3").

Buckets are given by ``edges`` (strictly increasing ints; bucket =
number of edges <= the context). The spec is stored in the layer's models
bytes just before the streams it splits::

    varint num_edges | num_edges x zigzag varint edge

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
MAX_EDGE = 2**16  # |edge|: contexts are size octaves (+-40) or indices (+-2^15)
BUCKETS_TRIED = (1, 2, 3, 4)


def size_context(chol_decoded: np.ndarray) -> np.ndarray:
    """[N] int64 size octaves of decoded raw Cholesky factors [N, 3]."""
    return size_octaves(chol_decoded).astype(np.int64)


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
        bits = split_cost(q, buckets(context, edges)) + 8 * len(_spec_bytes(edges))
        if bits < best[1]:
            best = (edges, bits)
    return best


def _spec_bytes(edges: tuple[int, ...]) -> bytes:
    return put_varint(len(edges)) + b"".join(put_varint(zigzag(e)) for e in edges)


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


def write_spec(writer: LayerWriter, edges: tuple[int, ...], what: str) -> None:
    writer.add_bytes(_spec_bytes(edges), what)


def read_spec(reader: LayerReader, what: str) -> tuple[int, ...]:
    """The edges of a context spec (CodecError unless strictly increasing and bounded)."""
    count = reader.varint(MAX_EDGES, f"{what} context edges")
    edges = tuple(unzigzag(reader.varint(2 * MAX_EDGE, f"{what} context edge")) for _ in range(count))
    check(all(a < b for a, b in zip(edges, edges[1:])), f"{what} context edges {edges} not increasing")
    return edges

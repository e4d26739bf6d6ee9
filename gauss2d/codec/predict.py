"""Coding order and neighbour prediction of the v2 attributes.

The v2 file codes positions first (a sorted set of grid keys, as v1). The
decoder therefore knows every position before it reads an attribute, so
encoder and decoder can derive, from the grid cells alone:

* the coding order: Z-order (Morton) of the cells, ties kept in key order,
  so consecutive Gaussians are usually spatial neighbours;
* each Gaussian's predecessor: the nearest (in grid cells) of the ``WINDOW``
  Gaussians coded just before it, or none for the first.

A predicted channel stores ``q[i] - q[pred[i]]`` (``q[i]`` for the first);
``unpredict`` rebuilds ``q`` by pointer jumping (log2 of the chain depth
vectorised passes, no Python loop over Gaussians). Integer arithmetic only,
so both sides agree exactly.
"""

from __future__ import annotations

import numpy as np

WINDOW = 16  # candidates for the predecessor: the Gaussians coded just before


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Interleaves zeros between the low 32 bits of ``v`` (for Morton codes)."""
    v = v.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for shift, mask in (
        (16, 0x0000FFFF0000FFFF),
        (8, 0x00FF00FF00FF00FF),
        (4, 0x0F0F0F0F0F0F0F0F),
        (2, 0x3333333333333333),
        (1, 0x5555555555555555),
    ):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def coding_order(cells: np.ndarray) -> np.ndarray:
    """Permutation [N] putting cells ``[N, 2]`` (gx, gy; in key order) into Z-order."""
    code = _spread_bits(cells[:, 0]) | (_spread_bits(cells[:, 1]) << np.uint64(1))
    return np.argsort(code, kind="stable")


def predecessors(cells: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """For cells ``[N, 2]`` in coding order, the index of each one's predecessor ([N] int64, -1: none).

    The nearest by squared grid distance among the ``window`` previous ones;
    ties go to the most recent.
    """
    n = cells.shape[0]
    c = cells.astype(np.int64)
    best = np.full(n, -1, np.int64)
    best_d = np.full(n, np.iinfo(np.int64).max, np.int64)
    idx = np.arange(n)
    for k in range(1, min(window, n - 1) + 1):  # k = 1 first: ties keep the most recent
        j = idx[k:] - k
        d = ((c[k:] - c[j]) ** 2).sum(-1)
        better = d < best_d[k:]
        best[k:] = np.where(better, j, best[k:])
        best_d[k:] = np.where(better, d, best_d[k:])
    return best


def residuals(q: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``q [N, C]`` minus each row's predecessor's (0 where there is none)."""
    base = np.where(pred[:, None] >= 0, q[np.maximum(pred, 0)], 0)
    return q - base


def unpredict(r: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Inverse of ``residuals``: q[i] = r[i] + q[pred[i]] summed along each chain.

    Requires ``pred[i] < i`` (true of ``predecessors``).
    """
    val = np.asarray(r, np.int64).copy()
    anc = np.asarray(pred, np.int64).copy()
    while (anc >= 0).any():  # pointer jumping: each pass doubles the span summed
        live = anc >= 0
        a = anc[live]
        val[live] += val[a]
        anc[live] = anc[a]
    return val

"""Which Gaussians go in which progressive layer (the encoder's choice; the decoder just reads layers).

The Gaussians are ranked, then cut into L layers of (nearly) equal counts,
first layer = highest rank. Rankings (``V3Settings.layer_order``):

* ``scale``: largest area sqrt(det Sigma) first (coarse structure first);
* ``contribution``: colour energy x area first, |c|^2 * sqrt(det Sigma): the
  squared-error a Gaussian's removal adds, up to overlaps (integral of
  (c w)^2 over the plane is |c|^2 * pi * sqrt(det Sigma));
* ``given``: the caller's order (e.g. a fit's allocation order).

benchmarks/codec_v3.py measures the prefix PSNRs of the three
(benchmarks/RESULTS.md, "codec v3").
"""

from __future__ import annotations

import numpy as np

from gauss2d.gaussians import CHOLESKY_OFFSET


def rank(chol: np.ndarray, color: np.ndarray, order: str) -> np.ndarray:
    """[N] indices, most important first, for raw Cholesky factors [N, 3] and raw colours [N, 3]."""
    n = chol.shape[0]
    if order == "given":
        return np.arange(n)
    lower = np.asarray(chol, np.float64) + np.asarray(CHOLESKY_OFFSET, np.float64)
    area = np.abs(lower[:, 0] * lower[:, 2])
    if order == "scale":
        score = area
    elif order == "contribution":
        score = np.sum(np.asarray(color, np.float64) ** 2, axis=-1) * area
    else:
        raise ValueError(f"unknown layer order {order!r}")
    return np.argsort(-score, kind="stable")


def split(ranked: np.ndarray, layers: int) -> list[np.ndarray]:
    """L index arrays of (nearly) equal counts, in rank order; ValueError when L > N."""
    if layers > ranked.shape[0]:
        raise ValueError(f"layers={layers} exceeds the {ranked.shape[0]} Gaussians: every layer holds one")
    return np.array_split(ranked, layers)

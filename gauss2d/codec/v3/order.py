"""Which Gaussians go in which progressive layer (the encoder's choice; the decoder just reads layers).

The Gaussians are ranked, then cut into L layers, first layer = highest
rank, of (``V3Settings.layer_sizes``) "geometric" counts N 2^k / (2^L - 1),
k = 0 .. L-1 (each layer twice the last; the default), or "equal" counts.
Geometric sizes give a small first layer (an early preview) and cost
fewer bits to say which layer each Gaussian is in (entropy 1.6 bits at
L = 4, 2 for equal layers): on kodim01-04 at N = 2250 the 4-layer file is
+0.8% to +2.9% over one layer, against +2.2% to +3.4% for equal sizes, on
the same PSNR-bytes curve (benchmarks/RESULTS.md, "codec v3").
Rankings (``V3Settings.layer_order``):

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


SIZES = ("geometric", "equal")


def counts(n: int, layers: int, sizes: str = "geometric") -> list[int]:
    """Gaussians per layer (each >= 1, summing to n); ValueError when layers > n."""
    if layers > n:
        raise ValueError(f"layers={layers} exceeds the {n} Gaussians: every layer holds one")
    if sizes == "equal":
        return [len(a) for a in np.array_split(np.arange(n), layers)]
    if sizes != "geometric":
        raise ValueError(f"unknown layer sizes {sizes!r}; expected one of {SIZES}")
    cuts = [round(n * (2**k - 1) / (2**layers - 1)) for k in range(1, layers)]
    cuts = [min(max(c, k + 1), n - (layers - 1 - k)) for k, c in enumerate(cuts)]  # every layer >= 1
    for k in range(1, len(cuts)):
        cuts[k] = max(cuts[k], cuts[k - 1] + 1)
    bounds = [0, *cuts, n]
    return [b - a for a, b in zip(bounds, bounds[1:])]


def split(ranked: np.ndarray, layers: int, sizes: str = "geometric") -> list[np.ndarray]:
    """L index arrays in rank order of ``counts(N, L, sizes)`` Gaussians each."""
    bounds = np.cumsum([0, *counts(ranked.shape[0], layers, sizes)])
    return [ranked[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

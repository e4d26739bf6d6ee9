"""The video benchmarks' pure table helpers, in a module without absl flags.

benchmarks.video_rd and video_pframe define command-line flags at import, and
so does benchmarks.hostile_inputs; one pytest process imports several of them,
and a flag defined twice is an error. Their tests import the helpers from here.
"""

from __future__ import annotations

import numpy as np

from gauss2d.rd import bjontegaard


def i_bytes_at(points: list[tuple[float, int]], psnr: float) -> tuple[float, bool]:
    """I-frame bytes at ``psnr`` from (psnr, bytes) points: (bytes, extrapolated)."""
    pts = sorted(points)
    q = np.asarray([p for p, _ in pts])
    b = np.log(np.asarray([n for _, n in pts], np.float64))
    outside = bool(psnr < q[0] or psnr > q[-1])
    return float(np.exp(np.interp(psnr, q, b))), outside


def curve(points: list[dict]) -> tuple[list[float], list[float]]:
    pairs = sorted((p["bpp"], p["psnr"]) for p in points)
    return [b for b, _ in pairs], [q for _, q in pairs]


def bd_table(test: list[dict], anchors: dict[str, list[dict]]) -> dict[str, float | str]:
    """BD-rate (%) of ``test`` against each anchor curve, or why it cannot be computed."""
    rt, qt = curve(test)
    out = {}
    for name, points in anchors.items():
        ra, qa = curve(points)
        try:
            out[name] = round(bjontegaard.bd_rate(ra, qa, rt, qt), 2)
        except bjontegaard.BjontegaardError as e:
            out[name] = f"n/a: {e}"
    return out

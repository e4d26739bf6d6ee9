"""How to store the alpha model's depth and opacity: measured on a fit (used by blend_compare).

Depth: only the compositing order matters. Three codings of the same
Gaussians (v2's quantised geometry, in coding order), each a real
``streams`` stream (the smaller of a stored Laplace or histogram model):

* ``layers``: what the file stores (gauss2d/codec/v2/alpha.py), lossless
  for the image;
* ``rank``: the exact permutation (also lossless); ``log2(N!)`` is the least
  any coding of an arbitrary permutation can spend;
* ``levels16`` / ``levels256``: the depth values uniformly quantised to L
  levels, ties then broken by coding order (lossy: PSNR measured);
* ``layers8`` / ``layers16``: the layers merged into L levels
  (``AlphaSettings.depth_levels``; lossy).

Opacity: the logit step against bits and PSNR, everything else as stored.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np

from gauss2d import metrics
from gauss2d.codec import AlphaSettings, format_settings, streams
from gauss2d.codec.v2.sections import quantize_v2
from gauss2d.codec.v2.state import init_state
from gauss2d.render import render_clamped

# The v2 settings the figures in benchmarks/RESULTS.md were measured with
# (raw Cholesky factors, one colour step for every size).
SETTINGS = format_settings(2, cov_space="cholesky", color_by_size=False)


def _quantize(params, h, w, alpha: AlphaSettings | None = None):
    settings = SETTINGS if alpha is None else dataclasses.replace(SETTINGS, alpha=alpha)
    return quantize_v2(params, h, w, init_state(params, settings), settings)


def _stream_bits(values: np.ndarray) -> int:
    return 8 * len(streams.encode_stream(np.asarray(values, np.int64)))


def measure(params, target: np.ndarray, opacity_steps: list[float]) -> dict:
    """Depth codings and opacity steps for ``params`` (CholeskyAlphaParams) fitted to ``target`` [H, W, 3]."""
    h, w = target.shape[:2]
    n = int(params.xy.shape[0])
    q = _quantize(params, h, w)
    depth = np.asarray(params.depth, np.float32)[q.source, 0]
    true_order = q.params._replace(depth=jnp.asarray(depth[:, None]))

    def psnr(p) -> float:
        return float(metrics.psnr(render_clamped(p, h, w), target))

    exact = psnr(true_order)
    order = np.lexsort((q.source, depth))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    out = {
        "num_gaussians": n,
        "psnr_true_order": exact,
        "layers": {
            "bits": _stream_bits(q.alpha.layers),
            "count": int(q.alpha.layers.max()) + 1,
            "psnr": psnr(q.params),
        },
        "rank": {"bits": _stream_bits(rank), "psnr": exact},
        "log2_n_factorial": math.lgamma(n + 1) / math.log(2),
    }
    span = max(float(depth.max() - depth.min()), 1e-30)
    for levels in (16, 256):
        v = np.round((depth - depth.min()) / span * (levels - 1)).astype(np.int64)
        lossy = q.params._replace(depth=jnp.asarray(v.astype(np.float32)[:, None]))
        out[f"levels{levels}"] = {"bits": _stream_bits(v), "psnr": psnr(lossy)}
    for levels in (8, 16):
        ql = _quantize(params, h, w, AlphaSettings(depth_levels=levels))
        out[f"layers{levels}"] = {"bits": _stream_bits(ql.alpha.layers), "psnr": psnr(ql.params)}
    raw = q.params._replace(opacity=jnp.asarray(np.asarray(params.opacity, np.float32)[q.source]))
    out["opacity_unquantised_psnr"] = psnr(raw._replace(depth=true_order.depth))
    out["opacity"] = []
    for step in opacity_steps:
        qs = _quantize(params, h, w, AlphaSettings(step))
        bits = _stream_bits(qs.alpha.opacity_q) + 64  # + the stored step and offset
        out["opacity"].append(
            {"step": step, "bits": bits, "psnr": psnr(qs.params._replace(depth=true_order.depth))}
        )
    return out


def print_tables(rows: list[tuple[str, dict]]) -> None:
    """Markdown: depth bits per Gaussian by coding, and opacity bits / PSNR by step."""
    print("\nDepth, bits per Gaussian (PSNR change against the true order):")
    print(
        "| image | N | layers (count) | rank | log2(N!)/N | 16 levels | 256 levels "
        "| layers in 8 | layers in 16 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, m in rows:
        n, base = m["num_gaussians"], m["psnr_true_order"]

        def cell(key, m=m, n=n, base=base):
            return f"{m[key]['bits'] / n:.2f} ({m[key]['psnr'] - base:+.3f} dB)"

        print(
            f"| {name} | {n} | {m['layers']['bits'] / n:.2f} ({m['layers']['count']}; "
            f"{m['layers']['psnr'] - base:+.4f} dB) | {m['rank']['bits'] / n:.2f} "
            f"| {m['log2_n_factorial'] / n:.2f} | {cell('levels16')} | {cell('levels256')} "
            f"| {cell('layers8')} | {cell('layers16')} |"
        )
    print("\nOpacity (logit step): bits per Gaussian, PSNR change against unquantised opacity:")
    steps = [o["step"] for o in rows[0][1]["opacity"]]
    print("| image | " + " | ".join(f"step {s:g}" for s in steps) + " |")
    print("|---|" + "---|" * len(steps))
    for name, m in rows:
        n, base = m["num_gaussians"], m["opacity_unquantised_psnr"]
        cells = [f"{o['bits'] / n:.2f} ({o['psnr'] - base:+.3f} dB)" for o in m["opacity"]]
        print(f"| {name} | " + " | ".join(cells) + " |")

"""The alpha model's opacity and depth as v2 stream-table entries (DESIGN.md section 2b, docs/alpha.md).

An alpha-composited file (``model.blend = "alpha"``) is a v2 file whose
header flag bit 1 is set and which holds the ``opacity`` and ``depth``
entries of the stream table (``table.py``) after the colour section.

* **Opacity**: the raw (pre-sigmoid) opacity, quantised like v2's other
  attributes: ``q = round((raw - offset) / step)``, value ``(q + offset /
  step) * step``. The logit is quantised rather than o itself, so the
  decoded opacity is always in (0, 1) and the steps in o are finest near 0
  and 1, where the 1/255 threshold and the 0.99 clamp sit.
* **Depth**: only the compositing order matters, and only between Gaussians
  that meet at some pixel. The file stores a *layer* per Gaussian instead
  of a depth: Gaussians are visited in their order (depth, then index), and
  each gets 1 + the largest layer among the Gaussians already visited whose
  footprint shares a pixel cell with its own (0 if none). The decoder's
  depth is the layer, ties broken by the coding index. Any two Gaussians
  that can both count at one pixel then keep their relative order, so every
  pixel composites the same Gaussians in the same order as the original:
  the depth coding is lossless for the image (exact at the fitted size and
  at every larger render; ``test_alpha_codec.py`` checks it), and the number
  of layers is the longest chain of overlapping Gaussians, not N.
  ``benchmarks/blend_compare.py`` measures it against coding the rank (the
  exact permutation) and quantised depth values.

  The footprint is where alpha can count at all: ``o w >= 1/255``, i.e. s <=
  ln(255 o) (Gaussians with o < 1/255 never count and get layer 0), a box
  around that ellipse in the fitted frame, widened by ``FOOTPRINT_MARGIN``
  in s for float32 rounding. It is computed from the decoded (quantised)
  geometry and opacity, the Gaussians the decoder renders.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.codec import quantize, streams
from gauss2d.codec.container import CodecError
from gauss2d.codec.v2 import table
from gauss2d.codec.v2.header import MAX_INDEX, MAX_STEP, MAX_ZERO, MIN_STEP
from gauss2d.codec.v2.state import AlphaSettings, dequantize, indices
from gauss2d.render import common

# Slack on the footprint's s bound: the renderer decides alpha >= 1/255 in
# float32 (relative error ~1e-7 in s and o), so 1e-3 is far on the safe side.
FOOTPRINT_MARGIN = 1e-3
ALPHA_MIN = 1.0 / 255.0  # render.alpha_common.ALPHA_MIN: below it a Gaussian is not counted


class AlphaPart(NamedTuple):
    """The opacity and depth of quantised alpha Gaussians, in coding order."""

    opacity_lsq: quantize.LsqParams  # step [1], offset [1]
    opacity_q: np.ndarray  # [N] int64
    layers: np.ndarray  # [N] int64


def footprint_boxes(params, height: int, width: int) -> np.ndarray:
    """[N, 4] int (x0, y0, x1, y1) inclusive pixel cells where alpha can count; x1 < x0: none.

    Args:
      params: ``CholeskyAlphaParams`` (the decoded values).
      height, width: the fitted frame.
    """
    proj, opacity, _ = gaussians.project_alpha(params, fitted_height=height, fitted_width=width)
    means = np.asarray(proj.means, np.float64)
    conics = np.asarray(proj.conics, np.float64)
    o = np.asarray(opacity, np.float64)
    valid = np.asarray(common.valid_gaussians(proj.means, proj.conics, proj.colors)) & (o >= ALPHA_MIN)
    s_max = np.minimum(common.S_MAX, np.log(np.maximum(o, ALPHA_MIN) * 255.0)) + FOOTPRINT_MARGIN
    a, b, c = conics[:, 0], conics[:, 1], conics[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        det = np.where(valid, a * c - b * b, 1.0)
        half = np.sqrt(2.0 * s_max[:, None] * np.stack([c, a], -1) / det[:, None])
    lo = np.floor(np.clip(means - half, -1.0, [width, height]))
    hi = np.floor(np.clip(means + half, -1.0, [width, height]))
    lo = np.maximum(lo, 0).astype(np.int64)
    hi = np.minimum(hi, [width - 1, height - 1]).astype(np.int64)
    boxes = np.concatenate([lo, hi], -1)
    boxes[~valid | ~np.all(np.isfinite(half), -1)] = [0, 0, -1, -1]
    return boxes


def depth_layers(boxes: np.ndarray, order: np.ndarray, height: int, width: int) -> np.ndarray:
    """[N] int64 layers: 1 + the largest layer of the earlier Gaussians whose box meets this one's.

    Args:
      boxes: [N, 4] from ``footprint_boxes``.
      order: [N] the compositing order (a permutation: first composited first).
      height, width: the fitted frame.
    """
    top = np.full((height, width), -1, np.int64)  # per pixel cell: the highest layer so far
    layers = np.zeros(len(order), np.int64)
    for i in order:
        x0, y0, x1, y1 = boxes[i]
        if x1 < x0 or y1 < y0:
            continue  # never counted anywhere: layer 0, meets nothing
        cell = top[y0 : y1 + 1, x0 : x1 + 1]
        layers[i] = cell.max() + 1
        cell[...] = layers[i]
    return layers


def _opacity_lsq(raw: np.ndarray, settings: AlphaSettings) -> quantize.LsqParams:
    step = np.full(1, settings.opacity_step, np.float32)
    return quantize.LsqParams(step, np.median(raw, keepdims=True).astype(np.float32).reshape(1))


def _check_lsq(lsq: quantize.LsqParams, error=CodecError) -> None:
    step, offset = float(lsq.scale[0]), float(lsq.offset[0])
    if not (math.isfinite(step) and math.isfinite(offset)):
        raise error("opacity quantiser is not finite")
    if not MIN_STEP <= step <= MAX_STEP:
        raise error(f"opacity step {step} out of [{MIN_STEP}, {MAX_STEP}]")
    if abs(offset / step) > MAX_ZERO:
        raise error(f"opacity offset / step exceeds {MAX_ZERO}")


def with_alpha(base: gaussians.CholeskyParams, part: AlphaPart) -> gaussians.CholeskyAlphaParams:
    """The decoded alpha Gaussians: ``base`` geometry and colour, the part's opacity and layers."""
    opacity = dequantize(part.opacity_q[:, None], part.opacity_lsq.scale, part.opacity_lsq.offset)
    depth = part.layers.astype(np.float32)[:, None]
    return gaussians.with_alpha(base, jnp.asarray(opacity), jnp.asarray(depth))


def check_alpha_arrays(params: gaussians.CholeskyAlphaParams) -> tuple[np.ndarray, np.ndarray]:
    """(raw opacity [N], depth [N]) float32 (ValueError for a wrong shape or a non-finite value)."""
    n = gaussians.num_gaussians(params)
    raw_opacity = np.asarray(params.opacity, np.float32).reshape(-1)
    depth = np.asarray(params.depth, np.float32).reshape(-1)
    if raw_opacity.shape != (n,) or depth.shape != (n,):
        raise ValueError(f"opacity {params.opacity.shape} and depth {params.depth.shape} must be [{n}, 1]")
    if not (np.isfinite(raw_opacity).all() and np.isfinite(depth).all()):
        raise ValueError("params hold a non-finite opacity or depth")
    return raw_opacity, depth


def quantize_alpha(
    base: gaussians.CholeskyParams,
    source: np.ndarray,
    raw_opacity: np.ndarray,
    depth: np.ndarray,
    height: int,
    width: int,
    settings: AlphaSettings,
) -> AlphaPart:
    """Opacity indices and depth layers of Gaussians whose quantised geometry is ``base`` (coding order).

    Args:
      base: the quantised sum-model part, in coding order.
      source: [N] index of each coded Gaussian in the caller's params.
      raw_opacity, depth: [N] in the caller's order.
      height, width: the fitted frame.
      settings: the opacity step and depth levels.
    """
    n = source.shape[0]
    lsq = _opacity_lsq(raw_opacity, settings)
    _check_lsq(lsq, ValueError)
    opacity_q = indices(raw_opacity[source, None], lsq)[:, 0]
    # Layers from what the decoder renders: quantised geometry and opacity, in coding order.
    decoded = with_alpha(base, AlphaPart(lsq, opacity_q, np.zeros(n, np.int64)))
    boxes = footprint_boxes(decoded, height, width)
    # The original compositing order (depth, then the caller's index), as coding positions.
    order = np.lexsort((source, depth[source]))
    layers = depth_layers(boxes, order, height, width)
    count = int(layers.max()) + 1
    if 0 < settings.depth_levels < count:
        layers = layers * settings.depth_levels // count
    return AlphaPart(lsq, opacity_q, layers)


def encode_entries(part: AlphaPart) -> list[bytes]:
    """The ``opacity`` and ``depth`` entries of the stream table."""
    step, offset = float(part.opacity_lsq.scale[0]), float(part.opacity_lsq.offset[0])
    return [table.encode_opacity(step, offset, part.opacity_q), table.encode_depth(part.layers)]


def decode_entries(entries: dict[str, bytes], n: int) -> AlphaPart:
    """Inverse of ``encode_entries`` (CodecError naming a damaged entry)."""
    step, offset, opacity_data = table.read_opacity(entries["opacity"])
    lsq = quantize.LsqParams(np.full(1, step, np.float32), np.full(1, offset, np.float32))
    with np.errstate(all="ignore"):
        _check_lsq(lsq)
    opacity_q = streams.decode_stream(opacity_data, n, "opacity")
    if np.abs(opacity_q).max() > MAX_INDEX:
        raise CodecError(f"opacity: index {np.abs(opacity_q).max()} exceeds {MAX_INDEX}")
    layers = streams.decode_stream(table.read_depth(entries["depth"]), n, "depth")
    if layers.min() < 0 or layers.max() >= n:
        raise CodecError(f"depth: layer out of [0, {n})")
    return AlphaPart(lsq, opacity_q, layers)

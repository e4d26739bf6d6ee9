"""The alpha model's opacity and depth in a version-2 file (DESIGN.md section 2b, docs/alpha.md).

An alpha-composited file (``model.blend = "alpha"``) is a v2 file whose
header flag bit 1 is set and which carries one more section after the
colour section, inside the file's CRC::

    opacity step f32 | opacity offset f32 |
    varint length, opacity stream | varint length, depth stream

Both streams are ``streams`` streams (a stored Laplace or categorical model,
the smaller), in the v2 coding order, like the Cholesky and colour channels.

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

import dataclasses
import math
import struct
import zlib
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.codec import bitstream, codec_v2, quantize, streams
from gauss2d.codec.bitstream import CodecError
from gauss2d.render import common

_STEP = struct.Struct("<ff")  # opacity step, offset
# Slack on the footprint's s bound: the renderer decides alpha >= 1/255 in
# float32 (relative error ~1e-7 in s and o), so 1e-3 is far on the safe side.
FOOTPRINT_MARGIN = 1e-3
ALPHA_MIN = 1.0 / 255.0  # render.alpha_common.ALPHA_MIN: below it a Gaussian is not counted


@dataclasses.dataclass(frozen=True)
class AlphaSettings:
    """The alpha section's encoder settings (the decoder needs neither).

    Attributes:
      opacity_step: opacity quantiser step in logit units (the offset is the
        median, as v2's other channels).
      depth_levels: 0 (default): exact layers, the image is unchanged. L > 0:
        at most L layers, layer k -> floor(k L / layers), so Gaussians of
        merged layers that overlap are composited in coding order instead
        (lossy; ~log2(L) bits per Gaussian; docs/alpha.md has the measurement).
    """

    opacity_step: float = 0.125
    depth_levels: int = 0

    def __post_init__(self):
        if not codec_v2.MIN_STEP <= self.opacity_step <= codec_v2.MAX_STEP:
            raise ValueError(
                f"opacity_step={self.opacity_step} must be in [{codec_v2.MIN_STEP}, {codec_v2.MAX_STEP}]"
            )
        if not (isinstance(self.depth_levels, int) and self.depth_levels >= 0):
            raise ValueError(f"depth_levels={self.depth_levels!r} must be an integer >= 0 (0: exact)")


class QuantizedAlpha(NamedTuple):
    params: gaussians.CholeskyAlphaParams  # in coding order: exactly what decode returns
    base: codec_v2.QuantizedV2  # the sum-model part (positions, Cholesky, colour), flag set
    opacity_lsq: quantize.LsqParams  # step [1], offset [1]
    opacity_q: np.ndarray  # [N] int64 in coding order
    layers: np.ndarray  # [N] int64 in coding order


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
    if not codec_v2.MIN_STEP <= step <= codec_v2.MAX_STEP:
        raise error(f"opacity step {step} out of [{codec_v2.MIN_STEP}, {codec_v2.MAX_STEP}]")
    if abs(offset / step) > codec_v2.MAX_ZERO:
        raise error(f"opacity offset / step exceeds {codec_v2.MAX_ZERO}")


def _alpha_params(base: gaussians.CholeskyParams, opacity_q, layers, lsq) -> gaussians.CholeskyAlphaParams:
    opacity = codec_v2.dequantize(opacity_q[:, None], lsq.scale, lsq.offset)
    depth = layers.astype(np.float32)[:, None]
    return gaussians.with_alpha(base, jnp.asarray(opacity), jnp.asarray(depth))


def quantize_alpha_v2(
    params: gaussians.CholeskyAlphaParams,
    height: int,
    width: int,
    state: codec_v2.V2State | None = None,
    settings: codec_v2.V2Settings | None = None,
    alpha_settings: AlphaSettings | None = None,
) -> QuantizedAlpha:
    """Quantises an alpha model to what a v2 file stores (ValueError for what it cannot)."""
    if not isinstance(params, gaussians.CholeskyAlphaParams):
        raise NotImplementedError(f"the alpha codec stores CholeskyAlphaParams, got {type(params).__name__}")
    settings = codec_v2.V2Settings() if settings is None else settings
    alpha_settings = AlphaSettings() if alpha_settings is None else alpha_settings
    geometry = gaussians.geometry(params)
    state = codec_v2.init_v2_state(geometry, settings) if state is None else state
    n = gaussians.num_gaussians(params)
    raw_opacity = np.asarray(params.opacity, np.float32).reshape(-1)
    depth = np.asarray(params.depth, np.float32).reshape(-1)
    if raw_opacity.shape != (n,) or depth.shape != (n,):
        raise ValueError(f"opacity {params.opacity.shape} and depth {params.depth.shape} must be [{n}, 1]")
    if not (np.isfinite(raw_opacity).all() and np.isfinite(depth).all()):
        raise ValueError("params hold a non-finite opacity or depth")
    base = codec_v2.quantize_v2(geometry, height, width, state, settings)
    base = base._replace(header=dataclasses.replace(base.header, alpha=True))
    lsq = _opacity_lsq(raw_opacity, alpha_settings)
    _check_lsq(lsq, ValueError)
    opacity_q = codec_v2.indices(raw_opacity[base.source, None], lsq)[:, 0]
    # Layers from what the decoder renders: quantised geometry and opacity, in coding order.
    decoded = _alpha_params(base.params, opacity_q, np.zeros(n, np.int64), lsq)
    boxes = footprint_boxes(decoded, height, width)
    # The original compositing order (depth, then the caller's index), as coding positions.
    order = np.lexsort((base.source, depth[base.source]))
    layers = depth_layers(boxes, order, height, width)
    count = int(layers.max()) + 1
    if 0 < alpha_settings.depth_levels < count:
        layers = layers * alpha_settings.depth_levels // count
    return QuantizedAlpha(_alpha_params(base.params, opacity_q, layers, lsq), base, lsq, opacity_q, layers)


def alpha_section(q: QuantizedAlpha) -> bytes:
    """The section after the colour: opacity quantiser, then the opacity and depth streams."""
    head = _STEP.pack(float(q.opacity_lsq.scale[0]), float(q.opacity_lsq.offset[0]))
    return head + streams.streams_section(
        [streams.encode_stream(q.opacity_q), streams.encode_stream(q.layers)]
    )


def encode_alpha_v2(
    params: gaussians.CholeskyAlphaParams,
    height: int,
    width: int,
    state: codec_v2.V2State | None = None,
    settings: codec_v2.V2Settings | None = None,
    alpha_settings: AlphaSettings | None = None,
) -> bytes:
    """Writes an alpha-composited version-2 file (``codec_v2.encode_v2`` forwards alpha params here).

    Args:
      params: ``CholeskyAlphaParams`` (xy [N, 2], chol [N, 3], color [N, 3],
        opacity [N, 1] raw, depth [N, 1]).
      height, width: the fitted frame in pixels.
      state: the v2 quantisers of the geometry and colour; None: ``codec_v2.init_v2_state``.
      settings: ``codec_v2.V2Settings``; None for the defaults.
      alpha_settings: ``AlphaSettings``; None for the defaults.

    Returns:
      The file's bytes; ``codec.decode`` returns ``quantize_alpha_v2(...).params`` from them, bit for bit.

    Raises:
      ValueError: as ``codec_v2.encode_v2``, or a non-finite opacity or depth.
    """
    settings = codec_v2.V2Settings() if settings is None else settings
    q = quantize_alpha_v2(params, height, width, state, settings, alpha_settings)
    plain = codec_v2.pack_file(codec_v2.encode_sections(q.base, settings))
    body = plain[:-4] + alpha_section(q)  # the alpha section goes last, inside the CRC
    data = body + struct.pack("<I", zlib.crc32(body))
    if q.base.header.num_gaussians > bitstream.max_gaussians_for_size(len(data)):
        raise ValueError(
            f"{q.base.header.num_gaussians} Gaussians coded in {len(data)} bytes: (near-)duplicate "
            "Gaussians; deduplicate them"
        )
    return data


# ----------------------------------------------------------------------------- decoder side


def check_tail(header: codec_v2.HeaderV2, tail: bytes) -> None:
    """The bytes after the colour section must be there exactly when the header says alpha."""
    if header.alpha and not tail:
        raise CodecError("alpha-composited file without its opacity and depth section")
    if not header.alpha and tail:
        raise CodecError(f"{len(tail)} bytes after the colour section of a sum-model file")


def _split(tail: bytes) -> tuple[quantize.LsqParams, bytes, bytes]:
    if len(tail) < _STEP.size:
        raise CodecError(f"alpha section is {len(tail)} bytes, shorter than its {_STEP.size}-byte quantiser")
    step, offset = _STEP.unpack_from(tail)
    lsq = quantize.LsqParams(np.full(1, step, np.float32), np.full(1, offset, np.float32))
    with np.errstate(all="ignore"):
        _check_lsq(lsq)
    opacity, depth = streams.split_streams(tail[_STEP.size :], 2, "alpha")
    return lsq, opacity, depth


def attach(base: gaussians.CholeskyParams, header: codec_v2.HeaderV2, tail: bytes):
    """The decoded Gaussians: ``base`` as it is for a sum-model file, with opacity and depth for alpha.

    Raises:
      CodecError: a damaged alpha section (one line naming the problem).
    """
    check_tail(header, tail)
    if not header.alpha:
        return base
    n = header.num_gaussians
    lsq, opacity_data, depth_data = _split(tail)
    opacity_q = streams.decode_stream(opacity_data, n, "opacity")
    if np.abs(opacity_q).max() > codec_v2.MAX_INDEX:
        raise CodecError(f"opacity: index {np.abs(opacity_q).max()} exceeds {codec_v2.MAX_INDEX}")
    layers = streams.decode_stream(depth_data, n, "depth")
    if layers.min() < 0 or layers.max() >= n:
        raise CodecError(f"depth: layer out of [0, {n})")
    return _alpha_params(base, opacity_q, layers, lsq)


def section_bits(tail: bytes) -> dict[str, int]:
    """Bits of a (valid) alpha section: opacity (its quantiser included) and depth; {} for none."""
    if not tail:
        return {}
    _, _, depth = _split(tail)
    depth_bits = 8 * (len(depth) + len(bitstream.put_varint(len(depth))))
    return {"opacity": 8 * len(tail) - depth_bits, "depth": depth_bits}

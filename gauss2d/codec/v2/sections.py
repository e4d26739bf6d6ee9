"""Version 2's encoder and decoder: Gaussians <-> the stream table's entries on the container.

Attributes are stored in the decoder's coding order (``predict``: Z-order of
the decoded cells); ``quantize_v2`` returns the Gaussians in that order.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.codec import container, entropy, predict, quantize
from gauss2d.codec.container import CodecError
from gauss2d.codec.cov_space import from_cov_space, size_step_factor, to_cov_space
from gauss2d.codec.v2 import alpha, table
from gauss2d.codec.v2.header import VERSION, HeaderV2, pack_header, parse_header
from gauss2d.codec.v2.state import V2Settings, V2State, dequantize, from_space, indices, to_space
from gauss2d.gaussians import CholeskyAlphaParams, CholeskyParams


class QuantizedV2(NamedTuple):
    params: gaussians.Params  # dequantised, in coding order: exactly what decode returns
    header: HeaderV2
    keys: np.ndarray  # [N] sorted grid keys (the positions section)
    order: np.ndarray  # [N] coding order: index into the key-sorted Gaussians
    source: np.ndarray  # [N] index of each coded Gaussian in the caller's params
    pred: np.ndarray  # [N] predecessor in coding order (-1: none)
    chol_q: np.ndarray  # [N, 3] int64 in coding order
    color_q: np.ndarray  # [N, 3] int64
    alpha: alpha.AlphaPart | None = None  # opacity and depth of an alpha-model file


class Sections(NamedTuple):
    """A v2 file split by the container: the listed sections and the inline bytes after them."""

    listed: list[bytes]  # header, positions, covariance, colour
    rest: bytes  # the inline entries (opacity, depth) of an alpha file, else empty


def dequantized(h: HeaderV2, cells, chol_q, color_q) -> CholeskyParams:
    """The one dequantisation path of the geometry and colour, shared by encoder and decoder."""
    step = 2.0**h.position_step_log2
    xy = quantize.grid_to_raw_xy(cells, step, h.height, h.width)
    chol = from_cov_space(dequantize(chol_q, h.chol_step, h.chol_offset), h.cov_space)
    color_step = h.color_step * size_step_factor(chol) if h.color_by_size else h.color_step
    color = from_space(dequantize(color_q, color_step, h.color_offset), h.color_space)
    return CholeskyParams(jnp.asarray(xy), jnp.asarray(chol), jnp.asarray(color.astype(np.float32)))


def grid(h: HeaderV2) -> tuple[int, int]:
    """(grid width, number of cells) of the position grid."""
    gw = h.width << -h.position_step_log2
    return gw, gw * (h.height << -h.position_step_log2)


def quantize_v2(params, height: int, width: int, state: V2State, settings: V2Settings) -> QuantizedV2:
    """What a v2 file stores for ``params`` (sum or alpha model; ValueError for what it cannot)."""
    if settings.position_refine:
        raise ValueError("format version 2 stores one position grid; per-Gaussian precision needs version=3")
    is_alpha = isinstance(params, CholeskyAlphaParams)
    if not (is_alpha or isinstance(params, CholeskyParams)):
        raise NotImplementedError(
            f"the codec supports the cholesky parameterisation, got {type(params).__name__}"
        )
    if is_alpha:
        raw_opacity, depth = alpha.check_alpha_arrays(params)
        params = gaussians.geometry(params)
    xy, chol, color = container.encodable_arrays(params, height, width)
    n = xy.shape[0]
    header = HeaderV2(
        height,
        width,
        n,
        settings.color_space,
        settings.position_step_log2,
        *(np.asarray(a, np.float32).reshape(3) for a in (*state.chol, *state.color)),
        cov_space=settings.cov_space,
        color_by_size=settings.color_by_size,
        alpha=is_alpha,
    )
    try:
        header.validate()
    except CodecError as e:
        raise ValueError(f"quantiser state cannot be stored: {e}") from e
    gw, _ = grid(header)
    means = 0.5 * (np.tanh(xy.astype(np.float64)) + 1.0) * np.asarray([width, height], np.float64)
    cells = quantize.grid_indices(means, settings.position_step, height, width)
    keys = cells[:, 1] * gw + cells[:, 0]
    by_key = np.argsort(keys, kind="stable")
    order = predict.coding_order(cells[by_key])
    source = by_key[order]
    cells = cells[source]
    pred = predict.predecessors(cells)
    chol_q = indices(to_cov_space(chol[source], settings.cov_space), state.chol)
    color_lsq = state.color
    if settings.color_by_size:  # per-Gaussian steps from the decoded factors, as the decoder derives them
        chol_steps = dequantize(chol_q, header.chol_step, header.chol_offset)
        chol_decoded = from_cov_space(chol_steps, settings.cov_space)
        color_lsq = (header.color_step * size_step_factor(chol_decoded), header.color_offset)
    color_q = indices(to_space(color[source], settings.color_space), color_lsq)
    out = dequantized(header, cells, chol_q, color_q)
    q = QuantizedV2(out, header, keys[by_key], order, source, pred, chol_q, color_q)
    if not is_alpha:
        return q
    part = alpha.quantize_alpha(out, source, raw_opacity, depth, height, width, settings.alpha)
    return q._replace(params=alpha.with_alpha(out, part), alpha=part)


def encode_sections(q: QuantizedV2, settings: V2Settings) -> list[bytes]:
    """Every entry's payload in file order (``table.present``)."""
    h = q.header
    _, cells = grid(h)
    out = [
        pack_header(h),
        entropy.encode_positions(q.keys, cells),
        table.encode_channels(q.chol_q, q.pred, settings.model, settings.predict),
        table.encode_channels(q.color_q, q.pred, settings.model, settings.predict),
    ]
    return out + (alpha.encode_entries(q.alpha) if q.alpha is not None else [])


def pack(payloads: list[bytes]) -> bytes:
    listed = len(table.LISTED)
    return container.pack_table(VERSION, payloads[:listed], payloads[listed:])


def split(data: bytes) -> Sections:
    listed, rest = container.split_table(bytes(data), table.LISTED, "v2")
    return Sections(listed, rest)


def read_header(sections: Sections) -> HeaderV2:
    """The header, with the inline entries' presence checked against its alpha flag."""
    h = parse_header(sections.listed[0])
    table.split_inline_entries(h, sections.rest)
    return h


def decode_sections(sections: Sections, h: HeaderV2) -> gaussians.Params:
    """The Gaussians (coding order) of a v2 file whose header passed the count and memory checks."""
    _, pos_data, cov, col = sections.listed
    n = h.num_gaussians
    gw, num_cells = grid(h)
    keys = entropy.decode_positions(pos_data, n, num_cells)
    cells = np.stack([keys % gw, keys // gw], axis=-1)
    cells = cells[predict.coding_order(cells)]
    pred = predict.predecessors(cells)
    chol_q = table.decode_channels(cov, n, pred, "covariance")
    color_q = table.decode_channels(col, n, pred, "color")
    base = dequantized(h, cells, chol_q, color_q)
    if not h.alpha:
        return base
    part = alpha.decode_entries(table.split_inline_entries(h, sections.rest), n)
    return alpha.with_alpha(base, part)


def section_bits(data: bytes) -> dict[str, int]:
    """Bits by entry; the container's bytes (magic, version, lengths, CRC) count as header."""
    sections = split(data)
    h = parse_header(sections.listed[0])
    out = {name: 8 * len(p) for name, p in zip(table.LISTED, sections.listed, strict=True)}
    out.update({k: 8 * len(v) for k, v in table.split_inline_entries(h, sections.rest).items()})
    out["header"] += 8 * len(data) - sum(out.values())
    return out

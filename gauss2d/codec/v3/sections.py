"""Version 3's encoder and decoder: Gaussians <-> the header record and the layer records.

A v3 file is the preamble and the container's *records* (``varint length |
payload | crc32``): record 0 the header (``header.py``), records 1..L the
layers. A layer is self-contained (its positions, contexts and models are
its own), so a prefix of whole layers decodes, and a file cut at any byte
decodes to the complete layers it holds. Layer record payload::

    varint models_len | models | varint raw_len | raw position mantissa bits |
    [refined files: varint refine_len | refinement bits] | ANS words

``models`` holds, in decoding order: the position-gap model, the model of
covariance channel 0, the shape context spec and the models of covariance
channels 1-2 (bucket by bucket, channel by channel), the size context spec
and the colour models (``models.py``, ``contexts.py``). ``words`` is the one ANS coder of every stream of the
layer. Within a layer the Gaussians are in raster order of their grid cells
(a set: the order costs nothing); ``quantize_v3`` returns them in file order.
With per-Gaussian position precision (header bit 3) the set is on the
coarse grid and each Gaussian's ``k`` refinement bits per axis (x then y,
MSB first, ``k`` derived from its decoded colour and size:
``position_refine.py``) follow in the refinement bits, in layer order.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.codec import bitpack, container, entropy, position_refine, quantize
from gauss2d.codec.container import CodecError, check
from gauss2d.codec.cov_space import from_cov_space, size_step_factor, to_cov_space
from gauss2d.codec.v2.header import MAX_INDEX
from gauss2d.codec.v2.sections import dequantized
from gauss2d.codec.v2.state import dequantize, indices, space_matrix, to_space
from gauss2d.codec.v3 import contexts, order
from gauss2d.codec.v3.header import VERSION, HeaderV3, pack_header, parse_header
from gauss2d.codec.v3.models import LayerReader, LayerWriter
from gauss2d.codec.v3.state import V3Settings, round_state
from gauss2d.gaussians import CholeskyAlphaParams, CholeskyParams

ATTRIBUTES = ("positions", "covariance", "color")


class Layer(NamedTuple):
    keys: np.ndarray  # [n] sorted grid keys
    cells: np.ndarray  # [n, 2] grid cells (gx, gy)
    chol_q: np.ndarray  # [n, 3] int64
    color_q: np.ndarray  # [n, 3] int64
    chol: np.ndarray  # [n, 3] decoded raw Cholesky factors (the size context)
    refine: np.ndarray | None = None  # [n] refinement octaves k (refined files)
    fine: np.ndarray | None = None  # [n, 2] the cells of each Gaussian's own grid (step / 2^k)


class QuantizedV3(NamedTuple):
    params: CholeskyParams  # dequantised, in file order: exactly what decode returns
    header: HeaderV3
    layers: list[Layer]
    source: np.ndarray  # [N] index of each stored Gaussian in the caller's params


def grid(h: HeaderV3) -> tuple[int, int]:
    """(grid width, number of cells) of the position grid."""
    gw = h.width << -h.position_step_log2
    return gw, gw * (h.height << -h.position_step_log2)


def quantize_v3(params, height: int, width: int, state, settings: V3Settings) -> QuantizedV3:
    """What a v3 file stores for ``params`` (sum model; ValueError for what it cannot hold)."""
    if isinstance(params, CholeskyAlphaParams):
        raise ValueError("format version 3 cannot store the alpha model; use version=2")
    if not isinstance(params, CholeskyParams):
        raise NotImplementedError(
            f"the codec supports the cholesky parameterisation, got {type(params).__name__}"
        )
    xy, chol, color = container.encodable_arrays(params, height, width)
    base = settings.base
    st = round_state(state)  # float16 first: the encoder quantises with the header's values
    ranked = order.rank(chol, color, settings.layer_order)
    parts = order.split(ranked, settings.layers, settings.layer_sizes)
    refine = base.refine_octaves
    header = HeaderV3(
        height, width, tuple(len(p) for p in parts), base.color_space, base.cov_space, base.color_by_size,
        base.position_step_log2 + refine, *(np.asarray(a, np.float32) for a in (*st.chol, *st.color)),
        position_refine=refine, refine_ref=base.refine_ref if refine else 0.0,
    )  # fmt: skip
    try:
        header.validate()
    except CodecError as e:
        raise ValueError(f"quantiser state cannot be stored in v3: {e}") from e
    gw, _ = grid(header)
    means = 0.5 * (np.tanh(xy.astype(np.float64)) + 1.0) * np.asarray([width, height], np.float64)
    cells = quantize.grid_indices(means, base.set_step, height, width)
    keys = cells[:, 1] * gw + cells[:, 0]
    sources, layers = [], []
    for part in parts:
        src = part[np.argsort(keys[part], kind="stable")]
        chol_q = indices(to_cov_space(chol[src], base.cov_space), st.chol)
        chol_dec = from_cov_space(dequantize(chol_q, header.chol_step, header.chol_offset), base.cov_space)
        color_lsq = st.color
        if base.color_by_size:  # per-Gaussian steps from the decoded factors, as the decoder derives them
            color_lsq = (header.color_step * size_step_factor(chol_dec), header.color_offset)
        color_q = indices(to_space(color[src], base.color_space), color_lsq)
        k = fine = None
        if refine:
            k = refine_of(header, chol_dec, color_q)
            fine = fine_cells(means[src], cells[src], k, header)
        layers.append(Layer(keys[src], cells[src], chol_q, color_q, chol_dec, k, fine))
        sources.append(src)
    source = np.concatenate(sources)
    out = dequantized(header, cells[source], *(np.concatenate(a) for a in zip(*[lay[2:4] for lay in layers])))
    if refine:
        fine = np.concatenate([lay.fine for lay in layers])
        out = out._replace(xy=refined_xy(header, fine, np.concatenate([lay.refine for lay in layers])))
    return QuantizedV3(out, header, layers, source)


def refine_of(h: HeaderV3, chol_dec: np.ndarray, color_q: np.ndarray) -> np.ndarray:
    """[n] refinement octaves of decoded Gaussians: the encoder's and the decoder's one path."""
    step = h.color_step * size_step_factor(chol_dec) if h.color_by_size else h.color_step
    coded = dequantize(color_q, step, h.color_offset)
    return position_refine.refine_octaves(
        coded, chol_dec, space_matrix(h.color_space), h.position_refine, h.refine_ref
    )


def fine_cells(means: np.ndarray, cells: np.ndarray, k: np.ndarray, h: HeaderV3) -> np.ndarray:
    """[n, 2] each mean's cell on its own grid (set step / 2^k), inside its coarse cell."""
    fine = np.floor(np.asarray(means, np.float64) / (2.0 ** (h.position_step_log2 - k))[:, None])
    low = cells << k[:, None]
    return np.clip(fine.astype(np.int64), low, low + (1 << k[:, None]) - 1)


def refined_xy(h: HeaderV3, fine: np.ndarray, k: np.ndarray):
    """Raw xy of the fine cells' centres (float32; as ``quantize.grid_to_raw_xy``, per-Gaussian step)."""
    return jnp.asarray(
        quantize.grid_to_raw_xy(fine, (2.0 ** (h.position_step_log2 - k))[:, None], h.height, h.width)
    )


def encode_layer(layer: Layer, h: HeaderV3, settings: V3Settings) -> bytes:
    """One layer record's payload (module docstring)."""
    _, num_cells = grid(h)
    writer = LayerWriter()
    sym, raw, width = entropy.position_symbols(layer.keys, num_cells)
    writer.add(sym, "positions")
    writer.add(layer.chol_q[:, 0], "covariance")
    shape = layer.chol_q[:, 1:]
    edges, _ = contexts.choose_edges(shape, layer.chol_q[:, 0], settings.shape_context)
    contexts.write_spec(writer, edges, "covariance")
    contexts.write_split(
        writer, shape, contexts.buckets(layer.chol_q[:, 0], edges), len(edges) + 1, "covariance"
    )
    size = contexts.size_context(layer.chol)
    edges, _ = contexts.choose_edges(layer.color_q, size, settings.color_context)
    contexts.write_spec(writer, edges, "color")
    contexts.write_split(writer, layer.color_q, contexts.buckets(size, edges), len(edges) + 1, "color")
    models, words = writer.finish()
    inline = [models, bitpack.pack_bits(raw, width)]
    if h.position_refine:  # k bits of x, then k of y, per Gaussian
        r = layer.fine - (layer.cells << layer.refine[:, None])
        inline.append(bitpack.pack_bits(r.reshape(-1), np.repeat(layer.refine, 2)))
    return container.join_inline(inline) + words


def encode_records(q: QuantizedV3, settings: V3Settings) -> list[bytes]:
    """The header record, then every layer record, in file order."""
    return [pack_header(q.header)] + [encode_layer(lay, q.header, settings) for lay in q.layers]


def pack(records: list[bytes]) -> bytes:
    return container.preamble(VERSION) + container.pack_records(records)


def split(data: bytes) -> list[bytes]:
    """The complete records of a (possibly truncated) v3 file; CodecError without header and a layer."""
    records = container.read_records(bytes(data), container.PREAMBLE, "record", allow_truncation=True)
    check(len(records) >= 1, f"truncated v3 file: {len(data)} bytes hold no complete header record")
    check(len(records) >= 2, f"truncated v3 file: {len(data)} bytes hold the header but no complete layer")
    used = container.PREAMBLE + len(container.pack_records(records))
    return records if used == len(data) else records + [None]  # None: the cut-off rest


def read_header(records: list) -> HeaderV3:
    """The header with ``layers_present`` set from the records read (CodecError on extra or cut layers)."""
    h = parse_header(records[0])
    cut = records[-1] is None
    present = len(records) - 1 - cut
    check(present <= h.num_layers, f"v3 file holds {present} layers, its header declares {h.num_layers}")
    check(
        not (cut and present == h.num_layers),
        f"bytes after the last of the {h.num_layers} layers",
    )
    return dataclasses.replace(h, layers_present=present)


def decode_layer(payload: bytes, h: HeaderV3, n: int, index: int, tally: dict | None = None):
    """(cells [n, 2], chol_q [n, 3], color_q [n, 3]) of one layer record (CodecError naming the layer)."""
    what = f"layer {index}"
    gw, num_cells = grid(h)
    models, pos = container.read_inline(payload, 0, f"{what} models")
    raw_bytes, pos = container.read_inline(payload, pos, f"{what} position bits")
    refine_bytes = b""
    if h.position_refine:
        refine_bytes, pos = container.read_inline(payload, pos, f"{what} position refinement bits")
    reader = LayerReader(models, payload[pos:], what, tally=tally is not None)
    marks = [0]
    sym = reader.read(n, "positions")
    check(
        sym.min() >= 0 and sym.max() < entropy.gap_alphabet(num_cells), f"{what}: position gap out of range"
    )
    raw = bitpack.unpack_bits(raw_bytes, entropy.raw_widths(sym), f"{what} position mantissa bits")
    keys = entropy.keys_from_symbols(sym, raw, num_cells)
    cells = np.stack([keys % gw, keys // gw], axis=-1)
    marks.append(reader.pos)
    first = reader.read(n, f"{what} covariance")
    edges = contexts.read_spec(reader, f"{what} covariance")
    shape = contexts.read_split(
        reader, contexts.buckets(first, edges), len(edges) + 1, 2, f"{what} covariance"
    )
    chol_q = np.concatenate([first[:, None], shape], axis=1)
    check(np.abs(chol_q).max() <= MAX_INDEX, f"{what}: covariance index exceeds {MAX_INDEX}")
    marks.append(reader.pos)
    chol = from_cov_space(dequantize(chol_q, h.chol_step, h.chol_offset), h.cov_space)
    edges = contexts.read_spec(reader, f"{what} color")
    size = contexts.size_context(chol)
    color_q = contexts.read_split(reader, contexts.buckets(size, edges), len(edges) + 1, 3, f"{what} color")
    check(np.abs(color_q).max() <= MAX_INDEX, f"{what}: colour index exceeds {MAX_INDEX}")
    marks.append(reader.pos)
    reader.finish()
    fine = k = None
    if h.position_refine:
        k = refine_of(h, chol, color_q)
        r = bitpack.unpack_bits(refine_bytes, np.repeat(k, 2), f"{what} position refinement bits")
        fine = (cells << k[:, None]) + r.astype(np.int64).reshape(-1, 2)
    if tally is not None:
        raw = len(raw_bytes) + len(refine_bytes)
        tally.update(models=np.diff(marks), raw=raw, words=len(payload) - pos, ideal=reader.bits)
    return cells, chol_q, color_q, fine, k


def decode(records: list, h: HeaderV3) -> gaussians.Params:
    """The Gaussians of the first ``h.layers_read`` layers, in file order."""
    n = h.num_gaussians
    cells, chol_q, color_q = (
        np.empty((n, 2), np.int64),
        np.empty((n, 3), np.int64),
        np.empty((n, 3), np.int64),
    )
    fine, k = (np.empty((n, 2), np.int64), np.empty((n,), np.int64)) if h.position_refine else (None, None)
    start = 0
    for i in range(h.layers_read):  # into place: one layer's temporaries at a time (budget.py's bound)
        count = h.layer_counts[i]
        part = decode_layer(records[1 + i], h, count, i + 1)
        for out, layer in zip((cells, chol_q, color_q, fine, k), part, strict=True):
            if out is not None:
                out[start : start + count] = layer
        start += count
    params = dequantized(h, cells, chol_q, color_q)
    return params._replace(xy=refined_xy(h, fine, k)) if h.position_refine else params


def _ideal_of(ideal: dict, attribute: str) -> float:
    return sum(v for k, v in ideal.items() if k.endswith(attribute))


def section_bits(data: bytes) -> dict[str, int]:
    """Bits by attribute of a (complete) file; every byte is counted once.

    One coder holds every stream of a layer, so its words are shared out in
    proportion to each attribute's ideal code length (largest remainders);
    models and context specs count for their attribute, the raw mantissa bits
    for positions, and the preamble, the header and the records' framing
    (lengths, CRCs) for "header".
    """
    records = split(data)
    h = read_header(records)
    out = dict.fromkeys(ATTRIBUTES, 0)
    for i in range(h.layers_read):
        tally: dict = {}
        decode_layer(records[1 + i], h, h.layer_counts[i], i + 1, tally)
        for name, size in zip(ATTRIBUTES, tally["models"], strict=True):
            out[name] += 8 * int(size)
        out["positions"] += 8 * tally["raw"]
        ideal = np.asarray([_ideal_of(tally["ideal"], a) for a in ATTRIBUTES])
        share = 8 * tally["words"] * ideal / max(ideal.sum(), 1e-12)
        bits = np.floor(share).astype(np.int64)
        for j in np.argsort(-(share - bits))[: 8 * tally["words"] - int(bits.sum())]:
            bits[j] += 1
        for name, b in zip(ATTRIBUTES, bits, strict=True):
            out[name] += int(b)
    out["header"] = 8 * len(data) - sum(out.values())
    return out

"""Format version 2: scalar colours in YCbCr, every attribute under a stored model, prediction.

File layout (all integers little-endian; docs/codec.md has the byte table)::

    magic b"G2D\\x00" | version u8 = 2
    varint length of each section: header, positions, covariance, colour
    the four section payloads
    crc32 u32 of every byte before it

* header: sizes, colour space, position grid step, the per-channel step and
  offset of the Cholesky and colour quantisers (``HEADER``).
* positions: v1's sorted-set coding of grid cells (entropy.encode_positions).
* covariance / colour: ``flags u8`` (bit c: channel c is predicted), then
  one ``streams`` stream per channel (a stored Laplace or categorical model).
* alpha-composited files only (header flag bit 0): opacity and depth after
  the colour section, inside the CRC (``alpha_streams``).

Quantisers: index ``q = round((x - offset) / step)``, signed, clipped to
``+-MAX_INDEX``; value ``(q + offset / step) * step`` (the v1 LSQ formula,
bit-exact in JAX and NumPy). Colours are quantised in ``color_space``:
``ycbcr`` (JPEG's full-range matrix) or ``rgb``. There is no codebook and no
cap on the number of distinct colours.

Attributes are stored in the decoder's coding order (``predict``: Z-order of
the decoded cells); ``quantize_v2`` returns the Gaussians in that order.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from gauss2d.codec import advice, bitstream, budget, entropy, predict, quantize, streams
from gauss2d.codec.bitstream import MAGIC, CodecError, get_varint, put_varint
from gauss2d.codec.cov_space import COV_SPACES, from_cov_space, size_step_factor, to_cov_space
from gauss2d.gaussians import CholeskyAlphaParams, CholeskyParams

VERSION = 2
MAX_INDEX = 2**15 - 1  # |q| <= this: alphabets (and predicted residuals) fit streams' limits
COLOR_SPACES = ("rgb", "ycbcr")
SECTIONS = ("header", "positions", "covariance", "color")
HEADER = struct.Struct(
    "<IIIBBbB12f"
)  # h, w, n, parameterization, colour space, step log2, flags (bit 0 colour by size, 1 alpha), 12 floats
# |step| and |offset / step| bounds: every dequantised value stays finite in float32.
MAX_STEP, MAX_ZERO = 1e6, 2.0**20
MIN_STEP = 1e-8

_YCBCR = np.asarray(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float64
)
_TO = {"rgb": np.eye(3, dtype=np.float32), "ycbcr": _YCBCR.astype(np.float32)}
_FROM = {"rgb": np.eye(3, dtype=np.float32), "ycbcr": np.linalg.inv(_YCBCR).astype(np.float32)}


def to_space(color, space: str):
    """[N, 3] RGB (raw colours) -> [N, 3] in ``space``; NumPy or JAX."""
    m = _TO[space]
    return color @ (m.T if isinstance(color, np.ndarray) else jnp.asarray(m.T))


def from_space(color, space: str):
    """Inverse of ``to_space``."""
    m = _FROM[space]
    return color @ (m.T if isinstance(color, np.ndarray) else jnp.asarray(m.T))


@dataclasses.dataclass(frozen=True)
class V2Settings:
    """v2 quantiser and coder settings (hashable: a static jit argument).

    Attributes:
      position_step: grid step in pixels, a power of two in [1/256, 1].
      color_space: "ycbcr" or "rgb".
      chol_levels: initial Cholesky step = per-channel range / (levels - 1).
      color_step: initial colour step (all channels; colour units, 1 = full range).
      predict: "auto" (per channel, whichever codes smaller), "on" or "off".
      model: "auto" (per stream, the smaller), "laplace" or "categorical".
      cov_space: the covariance quantiser's space (``cov_space.COV_SPACES``):
        "cholesky" (raw factors) or "log" (logs of the diagonal, relative shear).
      color_by_size: colour steps scaled per Gaussian by its decoded size,
        ``2^(-octaves / 2)`` (``cov_space.size_step_factor``).
    """

    position_step: float = 0.125
    color_space: str = "ycbcr"
    chol_levels: int = 64
    color_step: float = 1.0 / 64
    predict: str = "auto"
    model: str = "auto"
    cov_space: str = "cholesky"
    color_by_size: bool = False

    def __post_init__(self):
        step_log2 = np.log2(self.position_step) if self.position_step > 0 else np.nan
        lo, hi = bitstream.MIN_STEP_LOG2, bitstream.MAX_STEP_LOG2
        if not (np.isfinite(step_log2) and step_log2 == round(step_log2) and lo <= step_log2 <= hi):
            raise ValueError(f"position_step={self.position_step} must be a power of two in [2^{lo}, 2^{hi}]")
        if self.color_space not in COLOR_SPACES:
            raise ValueError(f"color_space={self.color_space!r} not in {COLOR_SPACES}")
        if not 2 <= self.chol_levels <= 2 * MAX_INDEX:
            raise ValueError(f"chol_levels={self.chol_levels} must be in [2, {2 * MAX_INDEX}]")
        if not MIN_STEP <= self.color_step <= 1.0:
            raise ValueError(f"color_step={self.color_step} must be in [{MIN_STEP}, 1]")
        if self.predict not in ("auto", "on", "off"):
            raise ValueError(f"predict={self.predict!r} must be 'auto', 'on' or 'off'")
        if self.model not in ("auto", "laplace", "categorical"):
            raise ValueError(f"model={self.model!r} must be 'auto', 'laplace' or 'categorical'")
        if self.cov_space not in COV_SPACES:
            raise ValueError(f"cov_space={self.cov_space!r} not in {COV_SPACES}")

    @property
    def position_step_log2(self) -> int:
        return round(float(np.log2(self.position_step)))


class V2State(NamedTuple):
    """Learned quantiser parameters: step (``scale``) and offset per channel."""

    chol: quantize.LsqParams  # [3] each, raw Cholesky
    color: quantize.LsqParams  # [3] each, colour in the settings' colour space


@dataclasses.dataclass(frozen=True)
class HeaderV2:
    height: int
    width: int
    num_gaussians: int
    color_space: str
    position_step_log2: int
    chol_step: np.ndarray  # [3] float32
    chol_offset: np.ndarray
    color_step: np.ndarray
    color_offset: np.ndarray
    cov_space: str = "cholesky"  # the header's parameterization code (0 cholesky, 1 log)
    color_by_size: bool = False  # flag bit 0: colour steps x 2^(-size octaves / 2)
    alpha: bool = False  # flag bit 1: opacity and depth follow the colour (alpha_streams)

    def validate(self) -> None:
        def check(ok, message):
            if not ok:
                raise CodecError(message)

        check(
            1 <= self.height <= bitstream.MAX_SIDE,
            f"height={self.height} must be in [1, {bitstream.MAX_SIDE}]",
        )
        check(
            1 <= self.width <= bitstream.MAX_SIDE, f"width={self.width} must be in [1, {bitstream.MAX_SIDE}]"
        )
        check(
            1 <= self.num_gaussians <= bitstream.MAX_GAUSSIANS,
            f"num_gaussians={self.num_gaussians} must be in [1, {bitstream.MAX_GAUSSIANS}]",
        )
        check(self.color_space in COLOR_SPACES, f"colour space {self.color_space!r} unknown")
        check(self.cov_space in COV_SPACES, f"covariance space {self.cov_space!r} unknown")
        lo, hi = bitstream.MIN_STEP_LOG2, bitstream.MAX_STEP_LOG2
        check(
            lo <= self.position_step_log2 <= hi,
            f"position_step_log2={self.position_step_log2} not in [{lo}, {hi}]",
        )
        for name in ("chol", "color"):
            step = np.asarray(getattr(self, f"{name}_step"), np.float32)
            offset = np.asarray(getattr(self, f"{name}_offset"), np.float32)
            check(step.shape == (3,) and offset.shape == (3,), f"{name} quantiser parameters must be [3]")
            check(
                bool(np.all(np.isfinite(step)) and np.all(np.isfinite(offset))),
                f"{name} quantiser is not finite",
            )
            check(
                bool(np.all((step >= MIN_STEP) & (step <= MAX_STEP))),
                f"{name} step {step} out of [{MIN_STEP}, {MAX_STEP}]",
            )
            check(bool(np.all(np.abs(offset / step) <= MAX_ZERO)), f"{name} offset / step exceeds {MAX_ZERO}")


def pack_header(h: HeaderV2) -> bytes:
    h.validate()
    floats = np.concatenate([h.chol_step, h.chol_offset, h.color_step, h.color_offset]).astype(np.float32)
    return HEADER.pack(
        h.height,
        h.width,
        h.num_gaussians,
        COV_SPACES.index(h.cov_space),
        COLOR_SPACES.index(h.color_space),
        h.position_step_log2,
        int(h.color_by_size) | int(h.alpha) << 1,
        *floats,
    )


def parse_header(payload: bytes) -> HeaderV2:
    if len(payload) != HEADER.size:
        raise CodecError(f"v2 header section is {len(payload)} bytes, expected {HEADER.size}")
    h, w, n, par, space, step, flags, *floats = HEADER.unpack(payload)
    if par >= len(COV_SPACES):
        raise CodecError(f"unknown parameterization code {par}")
    if space >= len(COLOR_SPACES):
        raise CodecError(f"unknown colour space code {space}")
    if flags >> 2:
        raise CodecError(f"header flags {flags:#x} has unknown bits (bit 0: colour by size, bit 1: alpha)")
    f = np.asarray(floats, np.float32)
    quantisers = (f[0:3], f[3:6], f[6:9], f[9:12])
    header = HeaderV2(
        h, w, n, COLOR_SPACES[space], step, *quantisers, COV_SPACES[par], bool(flags & 1), bool(flags & 2)
    )
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        header.validate()
    return header


class QuantizedV2(NamedTuple):
    params: CholeskyParams  # dequantised, in coding order: exactly what decode returns
    header: HeaderV2
    keys: np.ndarray  # [N] sorted grid keys (the positions section)
    order: np.ndarray  # [N] coding order: index into the key-sorted Gaussians
    source: np.ndarray  # [N] index of each coded Gaussian in the caller's params
    pred: np.ndarray  # [N] predecessor in coding order (-1: none)
    chol_q: np.ndarray  # [N, 3] int64 in coding order
    color_q: np.ndarray  # [N, 3] int64


def init_v2_state(params: CholeskyParams, settings: V2Settings = V2Settings()) -> V2State:
    """Steps from the settings, offsets at the channel medians (index 0 is the typical value).

    The Cholesky step is the channel's range in ``settings.cov_space`` over
    ``chol_levels - 1``; in the log space the range is the 0.5-99.5th
    percentiles (a near-degenerate factor's log would set it alone).
    """
    chol = to_cov_space(np.asarray(params.chol, np.float32), settings.cov_space)
    color = to_space(np.asarray(params.color, np.float32), settings.color_space)
    if settings.cov_space == "cholesky":
        span = chol.max(0) - chol.min(0)
    else:
        span = np.percentile(chol, 99.5, axis=0) - np.percentile(chol, 0.5, axis=0)
    chol_step = np.where(span > 0, span / (settings.chol_levels - 1), 1.0).astype(np.float32)
    color_step = np.full(3, settings.color_step, np.float32)
    if settings.color_by_size:  # the median Gaussian keeps the settings' step
        color_step /= float(np.median(size_step_factor(np.asarray(params.chol, np.float32))))
    return V2State(
        quantize.LsqParams(jnp.asarray(chol_step), jnp.asarray(np.median(chol, 0).astype(np.float32))),
        quantize.LsqParams(jnp.asarray(color_step), jnp.asarray(np.median(color, 0).astype(np.float32))),
    )


def indices(x: np.ndarray, lsq) -> np.ndarray:
    """Encoder side: [N, C] -> [N, C] int64 signed indices, clipped to +-MAX_INDEX."""
    step = np.asarray(lsq[0], np.float32)
    offset = np.asarray(lsq[1], np.float32)
    v = (np.asarray(x, np.float32) - offset) / step
    v = np.nan_to_num(v, nan=0.0, posinf=MAX_INDEX, neginf=-MAX_INDEX)
    return np.clip(np.round(v), -MAX_INDEX, MAX_INDEX).astype(np.int64)


def dequantize(q: np.ndarray, step: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Decoder side: the v1 LSQ formula on signed indices (see quantize.lsq_dequantize)."""
    return quantize.lsq_dequantize(q, quantize.LsqParams(step, offset))


def _dequantized(h: HeaderV2, cells, chol_q, color_q) -> CholeskyParams:
    step = 2.0**h.position_step_log2
    xy = quantize.grid_to_raw_xy(cells, step, h.height, h.width)
    chol = from_cov_space(dequantize(chol_q, h.chol_step, h.chol_offset), h.cov_space)
    color_step = h.color_step * size_step_factor(chol) if h.color_by_size else h.color_step
    color = from_space(dequantize(color_q, color_step, h.color_offset), h.color_space)
    return CholeskyParams(jnp.asarray(xy), jnp.asarray(chol), jnp.asarray(color.astype(np.float32)))


def _grid(h: HeaderV2) -> tuple[int, int]:
    gw = h.width << -h.position_step_log2
    return gw, gw * (h.height << -h.position_step_log2)


def quantize_v2(
    params: CholeskyParams, height: int, width: int, state: V2State, settings: V2Settings
) -> QuantizedV2:
    """Quantises Gaussians to what a v2 file stores (ValueError for what it cannot)."""
    if not isinstance(params, CholeskyParams):
        raise NotImplementedError(
            f"the codec supports the cholesky parameterisation, got {type(params).__name__}"
        )
    xy, chol, color = bitstream.encodable_arrays(params, height, width)
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
    )
    try:
        header.validate()
    except CodecError as e:
        raise ValueError(f"quantiser state cannot be stored: {e}") from e
    gw, _ = _grid(header)
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
    out = _dequantized(header, cells, chol_q, color_q)
    return QuantizedV2(out, header, keys[by_key], order, source, pred, chol_q, color_q)


def _attribute_section(q: np.ndarray, pred: np.ndarray, settings: V2Settings) -> bytes:
    """flags u8 (bit c: channel c predicted) then one stream per channel, each the smaller choice."""
    model = None if settings.model == "auto" else settings.model
    choices = {"auto": (False, True), "on": (True,), "off": (False,)}[settings.predict]
    flags, blobs = 0, []
    r = predict.residuals(q, pred)
    for c in range(q.shape[1]):
        options = [(p, streams.encode_stream(r[:, c] if p else q[:, c], model)) for p in choices]
        p, blob = min(options, key=lambda o: len(o[1]))
        flags |= int(p) << c
        blobs.append(blob)
    return bytes([flags]) + streams.streams_section(blobs)


def _read_attribute(data: bytes, n: int, pred: np.ndarray, what: str) -> np.ndarray:
    if not data:
        raise CodecError(f"{what} section is empty")
    flags = data[0]
    if flags >> 3:
        raise CodecError(f"{what} section flags {flags:#x} has unknown bits")
    blobs = streams.split_streams(data[1:], 3, what)
    cols = [streams.decode_stream(b, n, f"{what} channel {c}") for c, b in enumerate(blobs)]
    q = np.stack(cols, -1)
    for c in range(3):
        if flags >> c & 1:
            if np.abs(q[:, c]).max() > 2 * MAX_INDEX:
                raise CodecError(f"{what} channel {c}: residual out of range")
            q[:, c] = predict.unpredict(q[:, c : c + 1], pred)[:, 0]
    if np.abs(q).max() > MAX_INDEX:
        raise CodecError(f"{what}: index {np.abs(q).max()} exceeds {MAX_INDEX}")
    return q


def encode_sections(q: QuantizedV2, settings: V2Settings) -> list[bytes]:
    h = q.header
    _, cells = _grid(h)
    return [
        pack_header(h),
        entropy.encode_positions(q.keys, cells),
        _attribute_section(q.chol_q, q.pred, settings),
        _attribute_section(q.color_q, q.pred, settings),
    ]


def pack_file(sections: list[bytes]) -> bytes:
    body = MAGIC + bytes([VERSION]) + b"".join(put_varint(len(s)) for s in sections) + b"".join(sections)
    return body + struct.pack("<I", zlib.crc32(body))


def split_file(data: bytes, tail: bool = False) -> list[bytes]:
    """The four section payloads of a v2 file (magic and version already checked).

    ``tail``: also return the bytes after the colour section (an alpha file's
    opacity and depth, ``alpha_streams``) instead of refusing them.

    Raises:
      CodecError: truncated, a section length past the end, trailing bytes, or a CRC mismatch.
    """
    if len(data) < 6 + 4 + 4:
        raise CodecError(f"truncated v2 file: {len(data)} bytes")
    body, crc = data[:-4], struct.unpack("<I", data[-4:])[0]
    if zlib.crc32(body) != crc:
        raise CodecError("CRC mismatch: the file is corrupt or truncated")
    pos, lengths = 5, []
    for name in SECTIONS:
        length, pos = get_varint(body, pos, len(body), f"{name} section length")
        lengths.append(length)
    if pos + sum(lengths) > len(body) or (pos + sum(lengths) < len(body) and not tail):
        raise CodecError(f"v2 sections claim {sum(lengths)} bytes, {len(body) - pos} present")
    out = []
    for length in lengths:
        out.append(body[pos : pos + length])
        pos += length
    return out + [body[pos:]] if tail else out


def section_bits(data: bytes) -> dict[str, int]:
    """Bits of a (valid) v2 file by section; container bytes (magic, version, lengths, CRC) go to header."""
    from gauss2d.codec import alpha_streams  # it builds on this module

    *parts, tail = split_file(bytes(data), tail=True)
    out = {name: 8 * len(p) for name, p in zip(SECTIONS, parts, strict=True)}
    out.update(alpha_streams.section_bits(tail))
    out["header"] += 8 * len(data) - sum(out.values())
    out["total"] = 8 * len(data)
    return out


def decode_v2(data: bytes, memory_limit_gb: float | None = None):
    """Parses a v2 file: (params in coding order, height, width). CodecError on anything wrong.

    ``memory_limit_gb`` is checked from the header before anything that scales
    with N is allocated (``budget.check_decode``; None: no limit).
    """
    from gauss2d.codec import alpha_streams  # it builds on this module

    head, pos_data, cov, col, tail = split_file(data, tail=True)
    h = parse_header(head)
    alpha_streams.check_tail(h, tail)
    limit = bitstream.max_gaussians_for_size(len(data))
    if h.num_gaussians > limit:
        raise CodecError(
            f"num_gaussians={h.num_gaussians} is too many for a {len(data)}-byte file (<= {limit})"
        )
    budget.check_decode(h, len(data), memory_limit_gb)  # before anything that scales with N
    n = h.num_gaussians
    gw, num_cells = _grid(h)
    keys = entropy.decode_positions(pos_data, n, num_cells)
    cells = np.stack([keys % gw, keys // gw], axis=-1)
    cells = cells[predict.coding_order(cells)]
    pred = predict.predecessors(cells)
    chol_q = _read_attribute(cov, n, pred, "covariance")
    color_q = _read_attribute(col, n, pred, "color")
    params = alpha_streams.attach(_dequantized(h, cells, chol_q, color_q), h, tail)
    return params, h.height, h.width


def fake_quantize_v2(
    params: CholeskyParams,
    state: V2State,
    height: int,
    width: int,
    settings: V2Settings,
    quant_mode: str = "ste",
):
    """Training's jittable twin of ``quantize_v2`` (caller's order; straight-through gradients).

    Returns:
      ``(params_hat, chol_q, color_q)``: the dequantised parameters and the
      float index tensors (``[N, 3]`` each, integer-valued in the forward pass,
      identity gradient in "ste") that the rate estimate reads.
    """
    xy = quantize.grid_quantize_xy(params.xy, settings.position_step, height, width, quant_mode)
    u, chol_q = _lsq_signed(to_cov_space(params.chol, settings.cov_space), state.chol, quant_mode)
    chol = from_cov_space(u, settings.cov_space) if quant_mode != "none" else params.chol
    factor = size_step_factor(chol) if settings.color_by_size else None
    ycc, color_q = _lsq_signed(to_space(params.color, settings.color_space), state.color, quant_mode, factor)
    return CholeskyParams(xy, chol, from_space(ycc, settings.color_space)), chol_q, color_q


def _lsq_signed(x, lsq, mode, factor=None):
    """Signed LSQ fake quantiser: value and index, both straight-through; steps x ``factor`` [N, 1]."""
    step, offset = lsq
    g = 1.0 / float(np.sqrt(max(x.shape[0], 1) * 64.0))  # LSQ's gradient scaling (Q ~ 64 levels)
    step, offset = quantize._grad_scale(step, g), quantize._grad_scale(offset, g)
    if factor is not None:
        step = step * factor
    v = jnp.clip((x - offset) / step, -MAX_INDEX, MAX_INDEX)
    if mode == "none":
        return x, v
    q = quantize.sg(jnp.round(v)) + (v - quantize.sg(v))
    return (q + offset / step) * step, q


def encode_v2(
    params: CholeskyParams,
    height: int,
    width: int,
    state: V2State | None = None,
    settings: V2Settings | None = None,
    *,
    target: np.ndarray | None = None,
) -> bytes:
    """Quantises and writes a version-2 file.

    Args:
      params: ``CholeskyParams`` (xy [N, 2], chol [N, 3], color [N, 3]).
      height: image height in pixels.
      width: image width in pixels.
      state: the quantisers' steps and offsets; None: ``init_v2_state`` (and a warning).
      settings: ``V2Settings``; None for the defaults.
      target: the image [H, W, 3] in [0, 1]; only read, when ``state`` is
        None, to measure in the warning what plain quantisation costs.

    Returns:
      The file's bytes; ``decode`` returns ``quantize_v2(...).params`` from them, bit for bit.

    Warns:
      advice.NotFineTunedWarning: when ``state`` is None: the settings'
        initial steps, with Gaussians not fine-tuned with them.

    Raises:
      ValueError: bad sizes, non-finite values, a state the header cannot
        hold, or (near-)duplicate Gaussians coded in under 1/8 bit each.
    """
    if isinstance(params, CholeskyAlphaParams):
        from gauss2d.codec import alpha_streams  # it builds on this module

        return alpha_streams.encode_alpha_v2(params, height, width, state, settings)
    settings = V2Settings() if settings is None else settings
    missing = state is None
    state = init_v2_state(params, settings) if missing else state
    q = quantize_v2(params, height, width, state, settings)
    data = pack_file(encode_sections(q, settings))
    if q.header.num_gaussians > bitstream.max_gaussians_for_size(len(data)):
        raise ValueError(
            f"{q.header.num_gaussians} Gaussians coded in {len(data)} bytes: (near-)duplicate Gaussians; "
            "deduplicate them"
        )
    if missing:
        advice.warn_not_finetuned(
            "codec_v2.encode_v2(state=None)",
            missing_state="Without state= the steps are the settings' initial ones, not learned.",
            **advice.measured_cost(params, q.params, target),
        )
    return data

"""encode(params) -> bytes and decode(bytes) -> params (DESIGN.md section 5).

Two modes share the quantisers (6-bit LSQ+ Cholesky, 2 x 8 residual VQ colours):

* ``"gaussianimage"`` - the official accounting, fixed-length: FP16 raw means
  (32 bits), ``3 * chol_bits`` Cholesky bits (18), ``stages * log2(K)`` colour
  bits (6); 56 bits per Gaussian plus the header.
* ``"entropy"`` - means on a ``position_step``-pixel grid coded as a sorted set
  (no order: ~log2(N!) bits saved), Cholesky and colour indices with per-image
  adaptive categorical models (one per channel / stage).

``quantize_for_encoding`` returns exactly the parameters a decoder rebuilds
from the file (bit for bit, in file order: in entropy mode the Gaussians are
sorted by grid cell, which the order-free renderer does not care about).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d.codec import advice, bitstream, budget, codec_v2, entropy, quantize
from gauss2d.codec.bitstream import CodecError, Header
from gauss2d.gaussians import CholeskyParams, parameterization_of

# |raw xy| above this is clipped before FP16: tanh(10) == 1 in float32, so the
# rendered mean is unchanged, and FP16 can never overflow to inf.
FP16_XY_CLIP = 10.0


@dataclasses.dataclass(frozen=True)
class CodecSettings:
    """Quantiser settings; hashable, so it can be a static jit argument.

    Attributes:
      chol_bits: bits per Cholesky channel index (paper: 6).
      rvq_stages: residual VQ stages for colours (paper: 2).
      codebook_size: codewords per stage (paper: 8).
      position_step: entropy-mode grid step in pixels, a power of two in
        [1/256, 1]; 1/8 px keeps the position error (<= 1/16 px) near FP16's
        in the image centre for Kodak-sized images, at ~15 bits per Gaussian.
      codebook_dtype: "float16" (halves the side information) or "float32".
      kmeans_iters: Lloyd iterations per stage when no codebooks are given.
      seed: PRNG seed of that k-means (fixed, so encoding is deterministic).
    """

    chol_bits: int = 6
    rvq_stages: int = 2
    codebook_size: int = 8
    position_step: float = 0.125
    codebook_dtype: str = "float16"
    kmeans_iters: int = 20
    seed: int = 0

    def __post_init__(self):
        if not 1 <= self.chol_bits <= bitstream.MAX_CHOL_BITS:
            raise ValueError(f"chol_bits={self.chol_bits} must be in [1, {bitstream.MAX_CHOL_BITS}]")
        if not 1 <= self.rvq_stages <= bitstream.MAX_STAGES:
            raise ValueError(f"rvq_stages={self.rvq_stages} must be in [1, {bitstream.MAX_STAGES}]")
        if not 1 <= self.codebook_size <= bitstream.MAX_CODEBOOK:
            raise ValueError(f"codebook_size={self.codebook_size} must be in [1, {bitstream.MAX_CODEBOOK}]")
        step_log2 = np.log2(self.position_step) if self.position_step > 0 else np.nan
        lo, hi = bitstream.MIN_STEP_LOG2, bitstream.MAX_STEP_LOG2
        if not (np.isfinite(step_log2) and step_log2 == round(step_log2) and lo <= step_log2 <= hi):
            raise ValueError(f"position_step={self.position_step} must be a power of two in [2^{lo}, 2^{hi}]")
        if self.codebook_dtype not in bitstream.CODEBOOK_DTYPES:
            raise ValueError(f"codebook_dtype={self.codebook_dtype!r} not in {bitstream.CODEBOOK_DTYPES}")

    @property
    def position_step_log2(self) -> int:
        return round(float(np.log2(self.position_step)))


class CodecState(NamedTuple):
    """Learned quantiser parameters (QAT fine-tunes these)."""

    chol: quantize.LsqParams  # scale, offset: [3] each
    codebooks: jax.Array  # [stages, codebook_size, 3]


class Decoded(NamedTuple):
    """What ``decode`` returns."""

    params: CholeskyParams
    height: int
    width: int


class Quantized(NamedTuple):
    """Quantised Gaussians in file order, with the integers the file stores."""

    params: CholeskyParams  # dequantised raw params, exactly what decode returns
    header: Header
    positions: np.ndarray  # [N] sorted grid keys (entropy) or [N, 2] float16 raw xy
    chol_idx: np.ndarray  # [N, 3] int64
    color_idx: np.ndarray  # [N, stages] int64


def init_codec_state(
    params: CholeskyParams, settings: CodecSettings = CodecSettings(), key=None
) -> CodecState:
    """LSQ+ from the data's min / max, RVQ codebooks by k-means (fixed key by default)."""
    _check_params(params)
    key = jax.random.PRNGKey(settings.seed) if key is None else key
    books = quantize.rvq_kmeans_init(
        key,
        jnp.asarray(params.color, jnp.float32),
        settings.rvq_stages,
        settings.codebook_size,
        settings.kmeans_iters,
    )
    return CodecState(quantize.lsq_init(jnp.asarray(params.chol, jnp.float32), settings.chol_bits), books)


def _check_params(params) -> None:
    if not isinstance(params, CholeskyParams):
        name = parameterization_of(params)  # TypeError for a non-params object
        raise NotImplementedError(f"the codec supports the cholesky parameterisation, got {name!r}")


def _quantize(params, height, width, mode, state, settings) -> Quantized:
    settings = CodecSettings() if settings is None else settings
    _check_params(params)
    if mode not in bitstream.MODES:
        raise ValueError(f"unknown codec {mode=}; expected one of {bitstream.MODES}")
    xy, chol, color = bitstream.encodable_arrays(params, height, width)
    n = xy.shape[0]
    state = init_codec_state(params, settings) if state is None else state
    lsq = quantize.LsqParams(*(np.asarray(a, np.float32).reshape(3) for a in state.chol))
    dtype = np.float16 if settings.codebook_dtype == "float16" else np.float32
    with np.errstate(over="ignore"):  # an overflow becomes inf and is caught by Header.validate
        books = np.asarray(state.codebooks, np.float32).astype(dtype).astype(np.float32)
    header = Header(
        height=height,
        width=width,
        num_gaussians=n,
        parameterization="cholesky",
        mode=mode,
        chol_bits=settings.chol_bits,
        rvq_stages=settings.rvq_stages,
        codebook_size=settings.codebook_size,
        codebook_dtype=settings.codebook_dtype,
        position_step_log2=settings.position_step_log2 if mode == "entropy" else 0,
        content_crc=0,  # set below, once the indices are known
        chol_scale=lsq.scale,
        chol_offset=lsq.offset,
        codebooks=books,
    )
    try:
        header.validate()
    except CodecError as e:
        raise ValueError(f"quantiser state cannot be stored: {e}") from e
    if mode == "entropy":
        means = 0.5 * (np.tanh(xy.astype(np.float64)) + 1.0) * np.asarray([width, height], np.float64)
        cells = quantize.grid_indices(means, settings.position_step, height, width)
        keys = cells[:, 1] * _grid_width(header) + cells[:, 0]
        order = np.argsort(keys, kind="stable")
        positions = keys[order].astype("<u8")
        xy_q = quantize.grid_to_raw_xy(cells[order], settings.position_step, height, width)
    else:
        order = np.arange(n)
        positions = np.clip(xy, -FP16_XY_CLIP, FP16_XY_CLIP).astype("<f2")
        xy_q = positions.astype(np.float32)
    chol_idx = quantize.lsq_indices(chol[order], lsq, settings.chol_bits)
    color_idx = quantize.rvq_assign(color[order], books)
    crc = bitstream.content_crc(bitstream.pack_header(header), positions, chol_idx, color_idx)
    header = dataclasses.replace(header, content_crc=crc)
    out = _dequantized(xy_q, chol_idx, color_idx, header)
    return Quantized(out, header, positions, chol_idx, color_idx)


def _dequantized(xy_q, chol_idx, color_idx, header: Header) -> CholeskyParams:
    """The one dequantisation path, shared by encoder and decoder."""
    chol = quantize.lsq_dequantize(chol_idx, quantize.LsqParams(header.chol_scale, header.chol_offset))
    color = quantize.rvq_dequantize(color_idx, header.codebooks)
    return CholeskyParams(jnp.asarray(xy_q), jnp.asarray(chol), jnp.asarray(color))


def _grid_width(h: Header) -> int:
    return h.width << -h.position_step_log2


def _num_cells(h: Header) -> int:
    return _grid_width(h) * (h.height << -h.position_step_log2)


def _color_bits(h: Header) -> int:
    return (h.codebook_size - 1).bit_length()


def quantize_for_encoding(
    params: CholeskyParams,
    height: int,
    width: int,
    *,
    mode: str = "entropy",
    state: CodecState | None = None,
    settings: CodecSettings | None = None,
) -> CholeskyParams:
    """The quantised parameters ``encode`` stores, in file order (bit-exact with ``decode``).

    Args:
      params: fitted ``CholeskyParams`` (xy [N, 2], chol [N, 3], color [N, 3]).
      height: image height in pixels.
      width: image width in pixels.
      mode: "entropy" or "gaussianimage".
      state: learned quantiser parameters; None initialises them from the data.
      settings: ``CodecSettings``; None for the defaults.

    Returns:
      ``CholeskyParams`` of float32 arrays.
    """
    return _quantize(params, height, width, mode, state, settings).params


def encode(
    params: CholeskyParams,
    height: int,
    width: int,
    *,
    mode: str = "entropy",
    state: CodecState | None = None,
    settings: CodecSettings | None = None,
    target: np.ndarray | None = None,
) -> bytes:
    """Quantises and writes a gauss2d file (format version 1).

    Args: as ``quantize_for_encoding``, and
      target: the image [H, W, 3] in [0, 1] the Gaussians were fitted to;
        only read to measure, in the warning below, what plain quantisation
        costs.

    Returns:
      The file's bytes.

    Warns:
      advice.NotFineTunedWarning: when ``state`` is None. The quantisers are
        then initialised here (codebooks by k-means), so the Gaussians were
        not fine-tuned with them; with ``target`` the warning gives the PSNR
        that costs (``compress.compress_params`` fine-tunes first).

    Raises:
      NotImplementedError: for ``RSParams``.
      ValueError: on bad sizes, non-finite values, or a degenerate input whose
        file would spend under 1/8 bit per Gaussian (the decoder's N bound).
    """
    q = _quantize(params, height, width, mode, state, settings)
    if state is None:
        advice.warn_not_finetuned(
            "codec.encode(state=None)",
            missing_state="Without state= the colour codebooks are fitted here by k-means, so a "
            "fine-tuning's codebooks are not used (1.5 dB in issue 16).",
            **advice.measured_cost(params, q.params, target),
        )
    h = q.header
    if mode == "entropy":
        pos = entropy.encode_positions(q.positions, _num_cells(h))
        cov = entropy.symbols_section([(q.chol_idx[:, c], 2**h.chol_bits) for c in range(3)])
        col = entropy.symbols_section([(q.color_idx[:, s], h.codebook_size) for s in range(h.rvq_stages)])
    else:
        pos = q.positions.astype("<f2").tobytes()
        cov = bitstream.pack_bits(q.chol_idx.reshape(-1), h.chol_bits)
        col = bitstream.pack_bits(q.color_idx.reshape(-1), _color_bits(h))
    data = bitstream.pack_file([bitstream.pack_header(h), pos, cov, col])
    if h.num_gaussians > bitstream.max_gaussians_for_size(len(data)):
        raise ValueError(
            f"{h.num_gaussians} Gaussians coded in {len(data)} bytes: (near-)duplicate Gaussians; "
            "deduplicate them or use mode='gaussianimage'"
        )
    return data


def decode(data: bytes, *, memory_limit_gb: float | None = budget.DEFAULT_MEMORY_LIMIT_GB) -> Decoded:
    """Reads a gauss2d file.

    Args:
      data: the file's bytes.
      memory_limit_gb: refuse a file whose header says decoding needs more
        (``budget.decode_bytes``; None: no limit).

    Returns:
      ``Decoded(params, height, width)``; ``params`` equals
      ``quantize_for_encoding`` of what was encoded, bit for bit.

    Raises:
      CodecError: on anything wrong with ``data`` (and nothing else);
        ``budget.MemoryBudgetError`` (a ``CodecError``) over the budget.
    """
    try:
        return _decode(data, memory_limit_gb)
    except CodecError:
        raise
    except Exception as e:  # a gap in the checks must still surface as a CodecError
        raise CodecError(f"corrupt gauss2d file: {type(e).__name__}: {e}") from e


def _decode(data: bytes, memory_limit_gb: float | None) -> Decoded:
    if (
        isinstance(data, (bytes, bytearray, memoryview))
        and len(data) > 4
        and bytes(data[:4]) == bitstream.MAGIC
    ):
        if data[4] == codec_v2.VERSION:
            return Decoded(*codec_v2.decode_v2(bytes(data), memory_limit_gb))
    spans = bitstream.split_file(data)
    data = bytes(data)
    h = bitstream.parse_header(data[slice(*spans[0])])
    limit = bitstream.max_gaussians_for_size(len(data))
    if h.num_gaussians > limit:
        raise CodecError(
            f"num_gaussians={h.num_gaussians} is too many for a {len(data)}-byte file (<= {limit})"
        )
    budget.check_decode(h, len(data), memory_limit_gb)  # before anything that scales with N
    n = h.num_gaussians
    pos, cov, col = (data[slice(*s)] for s in spans[1:])
    if h.mode == "entropy":
        keys = entropy.decode_positions(pos, n, _num_cells(h))
        positions = keys.view("<u8")  # keys >= 0: the same bytes, no copy
        gw = _grid_width(h)
        cells = np.stack([keys % gw, keys // gw], axis=-1)
        xy_q = quantize.grid_to_raw_xy(cells, 2.0**h.position_step_log2, h.height, h.width)
        del cells
        # Indices as uint16 (every alphabet is <= 2^16): int64 copies of them
        # were most of a large file's decoding memory (budget.py).
        chol_idx = budget.stack_u16(entropy.read_symbols_section(cov, n, [2**h.chol_bits] * 3, "covariance"))
        streams = entropy.read_symbols_section(col, n, [h.codebook_size] * h.rvq_stages, "color")
        color_idx = budget.stack_u16(streams)
        del streams
    else:
        if len(pos) != 4 * n:
            raise CodecError(f"positions section is {len(pos)} bytes, expected {4 * n}")
        xy16 = positions = np.frombuffer(pos, "<f2").reshape(n, 2)
        if not np.isfinite(xy16).all():
            raise CodecError("positions hold a non-finite value")
        xy_q = xy16.astype(np.float32)
        chol_idx = bitstream.unpack_bits(cov, np.full(3 * n, h.chol_bits), "covariance").reshape(n, 3)
        color_idx = bitstream.unpack_bits(col, np.full(h.rvq_stages * n, _color_bits(h)), "color")
        color_idx = color_idx.reshape(n, h.rvq_stages)
        if color_idx.max() >= h.codebook_size:
            raise CodecError(f"colour index {color_idx.max()} >= codebook_size {h.codebook_size}")
    if bitstream.content_crc(data[slice(*spans[0])], positions, chol_idx, color_idx) != h.content_crc:
        raise CodecError("decoded content does not match its checksum (corrupt entropy-coded data)")
    params = _dequantized(xy_q, chol_idx, color_idx, h)  # any integer dtype: no int64 copies
    return Decoded(params, h.height, h.width)


def bits_by_attribute(data: bytes) -> dict[str, int]:
    """Bits of a (valid) file by attribute, framing included; they sum to ``total``.

    ``header`` counts magic, version and the header section (sizes, quantiser
    settings, LSQ parameters, codebooks); each attribute counts its section.
    """
    if len(data) > 4 and data[4] == codec_v2.VERSION:
        return codec_v2.section_bits(data)
    spans = bitstream.split_file(data)
    frame = 9  # id, length, crc32
    out = {"header": 8 * (5 + frame + spans[0][1] - spans[0][0])}
    for name, (start, end) in zip(bitstream.SECTION_NAMES[1:], spans[1:], strict=True):
        out[name] = 8 * (frame + end - start)
    out["total"] = 8 * len(data)
    return out


def fake_quantize(
    params: CholeskyParams,
    state: CodecState,
    height: int,
    width: int,
    *,
    mode: str = "entropy",
    settings: CodecSettings = CodecSettings(),
    quant_mode: str = "ste",
):
    """QAT's jittable twin of ``quantize_for_encoding`` (same order, float32 JAX).

    Returns:
      ``(params_hat, commit_loss)``; with "ste" every gradient w.r.t. ``params``
      is straight-through and ``state`` gets the LSQ gradients.
    """
    if mode == "entropy":
        xy = quantize.grid_quantize_xy(params.xy, settings.position_step, height, width, quant_mode)
    elif mode == "gaussianimage":
        xy_q = jnp.clip(params.xy, -FP16_XY_CLIP, FP16_XY_CLIP).astype(jnp.float16).astype(params.xy.dtype)
        xy = quantize.straight_through(params.xy, xy_q, quant_mode)
    else:
        raise ValueError(f"unknown codec {mode=}; expected one of {bitstream.MODES}")
    chol = quantize.lsq_quantize(params.chol, state.chol, settings.chol_bits, quant_mode)
    books = state.codebooks
    if settings.codebook_dtype == "float16":  # the file stores them in float16
        books = books.astype(jnp.float16).astype(books.dtype)
    color, _, loss = quantize.rvq_quantize(params.color, books, quant_mode)
    return CholeskyParams(xy, chol, color), loss

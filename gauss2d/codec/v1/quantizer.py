"""Version 1's quantisers: FP16 or grid positions, 6-bit LSQ+ Cholesky, residual-VQ colours.

Two modes share the quantisers:

* ``"gaussianimage"`` - the official accounting, fixed-length: FP16 raw means
  (32 bits), ``3 * chol_bits`` Cholesky bits (18), ``stages * log2(K)`` colour
  bits (6); 56 bits per Gaussian plus the header.
* ``"entropy"`` - means on a ``position_step``-pixel grid coded as a sorted set
  (no order: ~log2(N!) bits saved), Cholesky and colour indices with per-image
  adaptive categorical models (one per channel / stage).

``quantize`` returns exactly the parameters a decoder rebuilds from the file
(bit for bit, in file order: in entropy mode the Gaussians are sorted by grid
cell, which the order-free renderer does not care about).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d.codec import container, quantize
from gauss2d.codec.container import CodecError
from gauss2d.codec.v1 import header as v1h
from gauss2d.codec.v1.header import Header
from gauss2d.gaussians import CholeskyParams, parameterization_of
from gauss2d.settings import CodecSettings

# |raw xy| above this is clipped before FP16: tanh(10) == 1 in float32, so the
# rendered mean is unchanged, and FP16 can never overflow to inf.
FP16_XY_CLIP = 10.0


@dataclasses.dataclass(frozen=True)
class V1Settings:
    """Version 1's quantiser settings (hashable: a static jit argument); built by ``from_codec``.

    Attributes (settings.CodecSettings says what each means and holds the defaults):
      mode: "entropy" or "gaussianimage".
      chol_bits, rvq_stages, codebook_size: the quantisers' sizes.
      position_step: entropy-mode grid step in pixels, a power of two in [1/256, 1].
      codebook_dtype: "float16" or "float32".
      kmeans_iters: Lloyd iterations per stage when no codebooks are given.
      seed: PRNG seed of that k-means (fixed, so encoding is deterministic).
    """

    mode: str
    chol_bits: int
    rvq_stages: int
    codebook_size: int
    position_step: float
    codebook_dtype: str
    kmeans_iters: int
    seed: int

    def __post_init__(self):
        if self.mode not in v1h.MODES:
            raise ValueError(f"mode={self.mode!r} must be one of {v1h.MODES}")
        if not 1 <= self.chol_bits <= v1h.MAX_CHOL_BITS:
            raise ValueError(f"chol_bits={self.chol_bits} must be in [1, {v1h.MAX_CHOL_BITS}]")
        if not 1 <= self.rvq_stages <= v1h.MAX_STAGES:
            raise ValueError(f"rvq_stages={self.rvq_stages} must be in [1, {v1h.MAX_STAGES}]")
        if not 1 <= self.codebook_size <= v1h.MAX_CODEBOOK:
            raise ValueError(f"codebook_size={self.codebook_size} must be in [1, {v1h.MAX_CODEBOOK}]")
        container.position_step_log2(self.position_step)
        if self.codebook_dtype not in v1h.CODEBOOK_DTYPES:
            raise ValueError(f"codebook_dtype={self.codebook_dtype!r} not in {v1h.CODEBOOK_DTYPES}")

    @classmethod
    def from_codec(cls, codec: CodecSettings, seed: int = 0) -> V1Settings:
        """The v1 fields of the ``codec`` settings section (ValueError naming a bad field)."""
        return cls(
            mode=codec.mode,
            chol_bits=codec.chol_bits,
            rvq_stages=codec.rvq_stages,
            codebook_size=codec.codebook_size,
            position_step=codec.position_step,
            codebook_dtype=codec.codebook_dtype,
            kmeans_iters=codec.kmeans_iters,
            seed=seed,
        )

    @property
    def position_step_log2(self) -> int:
        return container.position_step_log2(self.position_step)


class V1State(NamedTuple):
    """Learned quantiser parameters (QAT fine-tunes these)."""

    chol: quantize.LsqParams  # scale, offset: [3] each
    codebooks: jax.Array  # [stages, codebook_size, 3]


class Quantized(NamedTuple):
    """Quantised Gaussians in file order, with the integers the file stores."""

    params: CholeskyParams  # dequantised raw params, exactly what decode returns
    header: Header
    positions: np.ndarray  # [N] sorted grid keys (entropy) or [N, 2] float16 raw xy
    chol_idx: np.ndarray  # [N, 3] int64
    color_idx: np.ndarray  # [N, stages] int64


def check_params(params) -> None:
    """NotImplementedError unless ``params`` are ``CholeskyParams`` (TypeError for a non-params object)."""
    if not isinstance(params, CholeskyParams):
        name = parameterization_of(params)
        raise NotImplementedError(f"the codec supports the cholesky parameterisation, got {name!r}")


def init_state(params: CholeskyParams, settings: V1Settings, key=None) -> V1State:
    """LSQ+ from the data's min / max, RVQ codebooks by k-means (``settings.seed`` by default)."""
    check_params(params)
    key = jax.random.PRNGKey(settings.seed) if key is None else key
    books = quantize.rvq_kmeans_init(
        key,
        jnp.asarray(params.color, jnp.float32),
        settings.rvq_stages,
        settings.codebook_size,
        settings.kmeans_iters,
    )
    return V1State(quantize.lsq_init(jnp.asarray(params.chol, jnp.float32), settings.chol_bits), books)


def grid_width(h: Header) -> int:
    return h.width << -h.position_step_log2


def num_cells(h: Header) -> int:
    return grid_width(h) * (h.height << -h.position_step_log2)


def color_bits(h: Header) -> int:
    return (h.codebook_size - 1).bit_length()


def quantize_params(params, height: int, width: int, state: V1State, settings: V1Settings) -> Quantized:
    """What a v1 file stores for ``params`` (ValueError for what it cannot)."""
    check_params(params)
    mode = settings.mode
    xy, chol, color = container.encodable_arrays(params, height, width)
    n = xy.shape[0]
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
        keys = cells[:, 1] * grid_width(header) + cells[:, 0]
        order = np.argsort(keys, kind="stable")
        positions = keys[order].astype("<u8")
        xy_q = quantize.grid_to_raw_xy(cells[order], settings.position_step, height, width)
    else:
        order = np.arange(n)
        positions = np.clip(xy, -FP16_XY_CLIP, FP16_XY_CLIP).astype("<f2")
        xy_q = positions.astype(np.float32)
    chol_idx = quantize.lsq_indices(chol[order], lsq, settings.chol_bits)
    color_idx = quantize.rvq_assign(color[order], books)
    crc = v1h.content_crc(v1h.pack_header(header), positions, chol_idx, color_idx)
    header = dataclasses.replace(header, content_crc=crc)
    out = dequantized(xy_q, chol_idx, color_idx, header)
    return Quantized(out, header, positions, chol_idx, color_idx)


def dequantized(xy_q, chol_idx, color_idx, header: Header) -> CholeskyParams:
    """The one dequantisation path, shared by encoder and decoder (any integer index dtype)."""
    chol = quantize.lsq_dequantize(chol_idx, quantize.LsqParams(header.chol_scale, header.chol_offset))
    color = quantize.rvq_dequantize(color_idx, header.codebooks)
    return CholeskyParams(jnp.asarray(xy_q), jnp.asarray(chol), jnp.asarray(color))

"""Version 2's quantisers: settings, learnable state, colour spaces and the signed index formula.

Quantisers: index ``q = round((x - offset) / step)``, signed, clipped to
``+-MAX_INDEX``; value ``(q + offset / step) * step`` (the v1 LSQ formula,
bit-exact in JAX and NumPy). Colours are quantised in ``color_space``:
``ycbcr`` (JPEG's full-range matrix) or ``rgb``. There is no codebook and no
cap on the number of distinct colours.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from gauss2d.codec import container, quantize
from gauss2d.codec.cov_space import COV_SPACES, size_step_factor, to_cov_space
from gauss2d.codec.position_refine import MAX_REFINE
from gauss2d.codec.v2.header import COLOR_SPACES, MAX_INDEX, MAX_STEP, MIN_STEP
from gauss2d.settings import CodecSettings

_YCBCR = np.asarray(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float64
)
_TO = {"rgb": np.eye(3, dtype=np.float32), "ycbcr": _YCBCR.astype(np.float32)}
_FROM = {"rgb": np.eye(3, dtype=np.float32), "ycbcr": np.linalg.inv(_YCBCR).astype(np.float32)}


def to_space(color, space: str):
    """[N, 3] RGB (raw colours) -> [N, 3] in ``space``; NumPy or JAX."""
    m = _TO[space]
    return color @ (m.T if isinstance(color, np.ndarray) else jnp.asarray(m.T))


def space_matrix(space: str) -> np.ndarray:
    """[3, 3] float32 M of ``from_space``: rgb = M @ u for a colour u in ``space``."""
    return _FROM[space]


def from_space(color, space: str):
    """Inverse of ``to_space``."""
    m = _FROM[space]
    return color @ (m.T if isinstance(color, np.ndarray) else jnp.asarray(m.T))


@dataclasses.dataclass(frozen=True)
class AlphaSettings:
    """The opacity and depth entries' encoder settings (the decoder needs neither).

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
        if not MIN_STEP <= self.opacity_step <= MAX_STEP:
            raise ValueError(f"opacity_step={self.opacity_step} must be in [{MIN_STEP}, {MAX_STEP}]")
        if not (isinstance(self.depth_levels, int) and self.depth_levels >= 0):
            raise ValueError(f"depth_levels={self.depth_levels!r} must be an integer >= 0 (0: exact)")


@dataclasses.dataclass(frozen=True)
class V2Settings:
    """v2 quantiser and coder settings (hashable: a static jit argument); built by ``from_codec``.

    Attributes (settings.CodecSettings says what each means and holds the defaults):
      position_step: grid step in pixels, a power of two in [1/256, 1].
      color_space: "ycbcr" or "rgb".
      chol_levels: initial Cholesky step = per-channel range / (levels - 1).
      color_step: initial colour step (all channels; colour units, 1 = full range).
      predict: "auto" (per channel, whichever codes smaller), "on" or "off".
      model: "auto" (per stream, the smaller), "laplace" or "categorical"
        (``codec.entropy_model``).
      cov_space: the covariance quantiser's space (``cov_space.COV_SPACES``).
      color_by_size: colour steps scaled per Gaussian by its decoded size.
      alpha: the opacity and depth entries' settings (alpha-model files only).
      position_refine: up to this many octaves of per-Gaussian position
        precision (``position_refine.py``; version 3 only: a v2 file stores
        one grid, so v2's own settings always hold 0). ``position_step`` is
        then the finest grid and the set is coded on ``set_step``.
      refine_ref: the reference level of that precision (a float16 value).
    """

    position_step: float
    color_space: str
    chol_levels: int
    color_step: float
    predict: str
    model: str
    cov_space: str
    color_by_size: bool
    alpha: AlphaSettings = AlphaSettings()
    position_refine: int = 0
    refine_ref: float = 0.0

    def __post_init__(self):
        container.position_step_log2(self.position_step)
        if not (isinstance(self.position_refine, int) and 0 <= self.position_refine <= MAX_REFINE):
            raise ValueError(
                f"position_refine={self.position_refine!r} must be an integer in [0, {MAX_REFINE}]"
            )
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

    @classmethod
    def from_codec(cls, codec: CodecSettings) -> V2Settings:
        """The v2 fields of the ``codec`` settings section (ValueError naming a bad field)."""
        return cls(
            position_step=codec.position_step,
            color_space=codec.color_space,
            chol_levels=codec.chol_levels,
            color_step=codec.color_step,
            predict=codec.predict,
            model=codec.entropy_model,
            cov_space=codec.cov_space,
            color_by_size=codec.color_by_size,
        )

    @property
    def position_step_log2(self) -> int:
        return container.position_step_log2(self.position_step)

    @property
    def refine_octaves(self) -> int:
        """K actually used: the set's grid ``position_step * 2^K`` is at most 1 px."""
        return min(self.position_refine, -self.position_step_log2)

    @property
    def set_step(self) -> float:
        """The grid (px) of the coded position set: the finest step times 2^K."""
        return self.position_step * 2.0**self.refine_octaves


class V2State(NamedTuple):
    """Learned quantiser parameters: step (``scale``) and offset per channel."""

    chol: quantize.LsqParams  # [3] each, in the settings' covariance space
    color: quantize.LsqParams  # [3] each, colour in the settings' colour space


def init_state(params, settings: V2Settings) -> V2State:
    """Steps from the settings, offsets at the channel medians (index 0 is the typical value).

    The Cholesky step is the channel's range in ``settings.cov_space`` over
    ``chol_levels - 1``; in the log space the range is the 0.5-99.5th
    percentiles (a near-degenerate factor's log would set it alone). Alpha
    params are quantised by their geometry and colour here.
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

"""Version 3's settings and quantiser state: v2's quantisers with float16 steps, plus layers.

v3 quantises exactly as v2 (``v2.state``: signed indices, LSQ formula,
colour steps by size); its steps and offsets are stored as float16, so the
state is rounded to float16 before it is used, by the encoder
(``round_state``) and by training's fake quantiser (``round_state_jax``,
straight-through), and both see the decoder's values.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from gauss2d.codec import quantize
from gauss2d.codec.v2.state import V2Settings
from gauss2d.codec.v3.header import MAX_FLOAT16, MAX_LAYERS, MIN_STEP16, to_float16
from gauss2d.settings import CodecSettings

LAYER_ORDERS = ("scale", "contribution", "given")


@dataclasses.dataclass(frozen=True)
class V3Settings:
    """v3 encoder settings (hashable: a static jit argument).

    Attributes:
      base: the quantisers' and coder's v2 settings (``predict`` is ignored:
        v3 has no neighbour prediction, measured not to pay).
      layers: progressive layers L >= 1 (``CodecSettings.layers``).
      layer_order: which Gaussians come first: "scale" (largest area first),
        "contribution" (colour energy x area first) or "given" (the caller's order).
      layer_sizes: "geometric" (each layer twice the last) or "equal" counts (``order.py``).
      color_context: allow colour models conditioned on size buckets.
      shape_context: allow models of covariance channels 1-2 conditioned on channel 0.
    """

    base: V2Settings
    layers: int = 1
    layer_order: str = "contribution"
    layer_sizes: str = "geometric"
    color_context: bool = True
    shape_context: bool = True

    def __post_init__(self):
        if not (isinstance(self.layers, int) and 1 <= self.layers <= MAX_LAYERS):
            raise ValueError(f"layers={self.layers!r} must be an integer in [1, {MAX_LAYERS}]")
        if self.layer_order not in LAYER_ORDERS:
            raise ValueError(f"layer_order={self.layer_order!r} not in {LAYER_ORDERS}")
        if self.layer_sizes not in ("geometric", "equal"):
            raise ValueError(f"layer_sizes={self.layer_sizes!r} must be 'geometric' or 'equal'")

    @classmethod
    def from_codec(cls, codec: CodecSettings, **changes) -> V3Settings:
        base = dataclasses.replace(
            V2Settings.from_codec(codec),
            position_refine=codec.position_refine,
            refine_ref=float(to_float16([codec.position_refine_ref] * 3, "position_refine_ref")[0]),
        )
        return cls(base, layers=codec.layers, **changes)


class V3State(NamedTuple):
    """Learned quantiser parameters (as ``V2State``; a distinct type so ``versions.of_state`` is exact)."""

    chol: quantize.LsqParams  # [3] each, in the settings' covariance space
    color: quantize.LsqParams  # [3] each


def round_state(state) -> V3State:
    """The state (``V3State`` or ``V2State``) rounded to the float16 values a v3 header stores.

    Raises:
      ValueError: a step outside float16's normal range or an offset beyond its
        finite range (naming version 2, which stores float32).
    """
    out = []
    for name, lsq in (("covariance", state.chol), ("colour", state.color)):
        step = to_float16(lsq[0], f"{name} step")
        if not np.all((step >= MIN_STEP16) & (step <= MAX_FLOAT16)):
            raise ValueError(
                f"{name} step {np.asarray(lsq[0])} is outside float16's range "
                f"[{MIN_STEP16:.3g}, {MAX_FLOAT16:g}] that v3 stores; use version=2"
            )
        out.append(quantize.LsqParams(step, to_float16(lsq[1], f"{name} offset")))
    return V3State(*out)


def round_state_jax(state) -> V3State:
    """Training's twin of ``round_state``: float16 values forward, identity gradient."""

    def r(x):
        return quantize.straight_through(x, x.astype(jnp.float16).astype(x.dtype), "ste")

    return V3State(*(quantize.LsqParams(r(q[0]), r(q[1])) for q in (state.chol, state.color)))

"""What a P-frame codes, and how a decoder applies it: frame state, deltas, and their coded size.

A decoder keeps each frame's Gaussians as a ``FrameState`` in the *coding
domain*: means in pixels, covariances in the codec's covariance space
(``cov_space``: "log" or "cholesky"), colours in its colour space. A P-frame
changes the previous decoded state by a ``PFrameDelta``:

* ``motion``: one global affine warp of every reference Gaussian first
  (``warp``: means about the frame centre, covariances ``A Sigma A^T``), six
  integers; a camera pan or zoom moves every Gaussian, and six numbers
  say it instead of N mean deltas;
* ``changed``: reference indices whose attributes moved, with integer deltas
  in units of ``DeltaSteps`` (``value += q * step``, float32);
* ``removed``: reference indices dropped (after the changes);
* ``added``: new Gaussians appended, their values as integers on the same
  steps (``value = q * step``).

``apply_delta`` is the decoder side, in NumPy float32; the encoder
(``pframe.code_pframe``) builds its reconstruction with this very function,
so the two agree bit for bit (closed loop: the next P-frame starts from
what the decoder will have). ``stream_bytes`` codes the parts with the
still codec's entropy coder (``codec.streams``) and returns their sizes:
the payload a P-frame section would carry, without a container around it
(``pcoding.py`` writes the same streams into a ``.g2v`` P-frame payload).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.codec import streams
from gauss2d.codec.container import put_varint
from gauss2d.codec.cov_space import COV_SPACES, from_cov_space, to_cov_space
from gauss2d.codec.v2 import sections as v2_sections
from gauss2d.codec.v2.header import COLOR_SPACES, parse_header
from gauss2d.codec.v2.state import from_space, to_space
from gauss2d.gaussians import CholeskyParams

# Status symbols of the per-reference-Gaussian stream.
SAME, CHANGED, REMOVED = 0, 1, 2
# Bytes a P-frame spends outside its streams, as first assumed for ``stream_bytes``:
# frame type and counts (~6), a length varint per stream (~12), CRC (4). A real
# ``.g2v`` frame's size is ``encoder.EncodedFrame.bytes`` (its record and index entry).
PFRAME_OVERHEAD_BYTES = 24
# Means are kept this far inside the frame (as gaussians.raw_from_means clips them).
_EDGE = 1e-4
# Global motion quantiser steps: the matrix's entries (minus the identity)
# in 1/4096 (0.05 px at 200 px from the centre), the shift in 1/64 px.
MOTION_MATRIX_STEP = 1.0 / 4096
MOTION_SHIFT_STEP = 1.0 / 64
MOTION_STEPS = np.asarray([MOTION_MATRIX_STEP] * 4 + [MOTION_SHIFT_STEP] * 2, np.float32)


class FrameState(NamedTuple):
    """One frame's Gaussians as the decoder holds them (float32, coding domain)."""

    means: np.ndarray  # [N, 2] px, (x, y)
    cov: np.ndarray  # [N, 3] in DeltaSteps.cov_space
    color: np.ndarray  # [N, 3] in DeltaSteps.color_space


@dataclasses.dataclass(frozen=True)
class DeltaSteps:
    """Quantiser steps of the deltas (and of added Gaussians), fixed for a GOP.

    Attributes:
      position: px per unit of a mean's delta.
      cov: [3] per covariance-space channel.
      color: [3] per colour channel.
      cov_space: "log" or "cholesky" (``codec.cov_space``).
      color_space: "ycbcr" or "rgb".
    """

    position: float = 0.125
    cov: tuple[float, float, float] = (0.05, 0.05, 0.05)
    color: tuple[float, float, float] = (1 / 64, 1 / 64, 1 / 64)
    cov_space: str = "log"
    color_space: str = "ycbcr"

    def __post_init__(self):
        values = (self.position, *self.cov, *self.color)
        if len(self.cov) != 3 or len(self.color) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"delta steps must be finite and > 0 (cov and color 3 each), got {self}")
        if self.cov_space not in COV_SPACES or self.color_space not in COLOR_SPACES:
            raise ValueError(f"cov_space={self.cov_space!r} / color_space={self.color_space!r} unknown")

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position [2], cov [3], color [3]) float32."""
        return (
            np.full(2, self.position, np.float32),
            np.asarray(self.cov, np.float32),
            np.asarray(self.color, np.float32),
        )


def steps_from_v2_file(data: bytes, position: float | None = None, scale: float = 1.0) -> DeltaSteps:
    """Delta steps from an I-frame's v2 file: its learned Cholesky and colour steps (x ``scale``).

    The file's colour steps are its base steps (before the per-size factor
    of ``color_by_size``). ``position`` defaults to the file's position grid step.

    Raises:
      CodecError: a file that is not a valid v2 file.
    """
    h = parse_header(v2_sections.split(bytes(data)).listed[0])
    return DeltaSteps(
        position=float(2.0**h.position_step_log2 if position is None else position),
        cov=tuple(float(s) * scale for s in h.chol_step),
        color=tuple(float(s) * scale for s in h.color_step),
        cov_space=h.cov_space,
        color_space=h.color_space,
    )


def state_from_params(params: CholeskyParams, height: int, width: int, steps: DeltaSteps) -> FrameState:
    """Decoded Gaussians (e.g. an I-frame's) -> the decoder's ``FrameState`` (NumPy, deterministic)."""
    xy = np.asarray(params.xy, np.float32)
    size = np.asarray([width, height], np.float32)
    means = (np.float32(0.5) * (np.tanh(xy) + np.float32(1.0)) * size).astype(np.float32)
    cov = to_cov_space(np.asarray(params.chol, np.float32), steps.cov_space)
    color = to_space(np.asarray(params.color, np.float32), steps.color_space)
    return FrameState(means, np.asarray(cov, np.float32), np.asarray(color, np.float32))


def params_from_state(state: FrameState, height: int, width: int, steps: DeltaSteps) -> CholeskyParams:
    """``FrameState`` -> raw ``CholeskyParams`` (NumPy float32) for the renderer."""
    size = np.asarray([width, height], np.float32)
    u = np.clip(state.means / size, _EDGE, 1.0 - _EDGE)
    xy = np.arctanh(np.float32(2.0) * u - np.float32(1.0)).astype(np.float32)
    chol = np.asarray(from_cov_space(np.asarray(state.cov, np.float32), steps.cov_space), np.float32)
    color = np.asarray(from_space(np.asarray(state.color, np.float32), steps.color_space), np.float32)
    return CholeskyParams(xy, chol, color)


class PFrameDelta(NamedTuple):
    """What changed between the reference frame and this one (every array int64)."""

    num_reference: int  # N, Gaussians in the reference
    motion: np.ndarray  # [6] (a11 - 1, a12, a21, a22 - 1) / MOTION_MATRIX_STEP, (tx, ty) / MOTION_SHIFT_STEP
    changed: np.ndarray  # [C] sorted reference indices with a non-zero delta
    d_means: np.ndarray  # [C, 2] in units of DeltaSteps.position
    d_cov: np.ndarray  # [C, 3] in units of DeltaSteps.cov
    d_color: np.ndarray  # [C, 3] in units of DeltaSteps.color
    removed: np.ndarray  # [R] sorted reference indices, none of them in ``changed``
    added_means: np.ndarray  # [A, 2] mean / position step
    added_cov: np.ndarray  # [A, 3] value / cov step
    added_color: np.ndarray  # [A, 3] value / colour step

    @property
    def num_changed(self) -> int:
        return int(self.changed.size)

    @property
    def num_added(self) -> int:
        return int(self.added_means.shape[0])

    @property
    def num_removed(self) -> int:
        return int(self.removed.size)


def check_delta(delta: PFrameDelta) -> None:
    """Raises ValueError naming what is inconsistent (indices out of range, overlaps, shapes)."""
    n = int(delta.num_reference)
    c, r, a = delta.changed.size, delta.removed.size, delta.added_means.shape[0]
    shapes = {
        "d_means": (delta.d_means, (c, 2)),
        "d_cov": (delta.d_cov, (c, 3)),
        "d_color": (delta.d_color, (c, 3)),
        "added_means": (delta.added_means, (a, 2)),
        "added_cov": (delta.added_cov, (a, 3)),
        "added_color": (delta.added_color, (a, 3)),
    }
    shapes["motion"] = (np.asarray(delta.motion), (6,))
    for name, (array, shape) in shapes.items():
        if array.shape != shape:
            raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    for name, idx in (("changed", delta.changed), ("removed", delta.removed)):
        if idx.size and (idx.min() < 0 or idx.max() >= n or np.any(np.diff(idx) <= 0)):
            raise ValueError(f"{name} indices must be sorted, distinct and in [0, {n})")
    if np.intersect1d(delta.changed, delta.removed).size:
        raise ValueError("a Gaussian cannot be both changed and removed")
    if n - r + a < 1:
        raise ValueError(f"the frame would hold no Gaussian ({n} - {r} removed + {a} added)")


def motion_matrix(motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer motion [6] -> (A [2, 2], t [2]) float32."""
    v = np.asarray(motion, np.int64).astype(np.float32) * MOTION_STEPS
    a = np.asarray([[1.0 + v[0], v[1]], [v[2], 1.0 + v[3]]], np.float32)
    return a, v[4:6].astype(np.float32)


def warp(state: FrameState, motion: np.ndarray, height: int, width: int, steps: DeltaSteps) -> FrameState:
    """Every Gaussian moved by the global affine motion (NumPy float32); zero motion returns ``state`` as is.

    Means: ``A (m - c) + c + t`` with c the frame centre; covariances
    ``A Sigma A^T``, refactored (Cholesky) into the covariance space.
    """
    if not np.any(np.asarray(motion)):
        return state
    a, t = motion_matrix(motion)
    centre = np.asarray([width / 2, height / 2], np.float32)
    means = ((state.means - centre) @ a.T + centre + t).astype(np.float32)
    chol = np.asarray(from_cov_space(np.asarray(state.cov, np.float32), steps.cov_space), np.float32)
    chol = warp_cholesky(chol, a)
    cov = np.asarray(to_cov_space(chol, steps.cov_space), np.float32)
    return FrameState(means, cov, state.color)


def warp_cholesky(chol, a):
    """Raw Cholesky factors [N, 3] of ``A Sigma A^T``; NumPy or JAX (the same formula)."""
    xp = np if isinstance(chol, np.ndarray) else jnp
    offset = xp.asarray(gaussians.CHOLESKY_OFFSET, chol.dtype)
    lower = chol + offset
    l11, l21, l22 = lower[:, 0], lower[:, 1], lower[:, 2]
    # Sigma = L L^T; M = A L has columns A (l11, l21) and A (0, l22); Sigma' = M M^T.
    m11, m21 = a[0, 0] * l11 + a[0, 1] * l21, a[1, 0] * l11 + a[1, 1] * l21
    m12, m22 = a[0, 1] * l22, a[1, 1] * l22
    s11 = m11 * m11 + m12 * m12
    s21 = m21 * m11 + m22 * m12
    s22 = m21 * m21 + m22 * m22
    n11 = xp.sqrt(xp.maximum(s11, 1e-12))
    n21 = s21 / n11
    n22 = xp.sqrt(xp.maximum(s22 - n21 * n21, 1e-12))
    return (xp.stack([n11, n21, n22], axis=-1) - offset).astype(chol.dtype)


def apply_delta(
    reference: FrameState, delta: PFrameDelta, steps: DeltaSteps, height: int, width: int
) -> FrameState:
    """The decoder's reconstruction: reference warped, + changes, minus removed, plus added (NumPy float32).

    Raises:
      ValueError: a delta inconsistent with itself or with ``reference``.
    """
    check_delta(delta)
    if reference.means.shape[0] != delta.num_reference:
        raise ValueError(
            f"delta is for {delta.num_reference} Gaussians, reference has {reference.means.shape[0]}"
        )
    pos, cov_step, color_step = steps.arrays()
    reference = warp(reference, delta.motion, height, width, steps)
    means, cov, color = (np.array(a, np.float32, copy=True) for a in reference)
    i = delta.changed
    means[i] += delta.d_means.astype(np.float32) * pos
    cov[i] += delta.d_cov.astype(np.float32) * cov_step
    color[i] += delta.d_color.astype(np.float32) * color_step
    keep = np.ones(delta.num_reference, bool)
    keep[delta.removed] = False
    return FrameState(
        np.concatenate([means[keep], delta.added_means.astype(np.float32) * pos]),
        np.concatenate([cov[keep], delta.added_cov.astype(np.float32) * cov_step]),
        np.concatenate([color[keep], delta.added_color.astype(np.float32) * color_step]),
    )


def status(delta: PFrameDelta) -> np.ndarray:
    """[N] per reference Gaussian: SAME, CHANGED or REMOVED."""
    out = np.full(delta.num_reference, SAME, np.int64)
    out[delta.changed] = CHANGED
    out[delta.removed] = REMOVED
    return out


def stream_bytes(delta: PFrameDelta) -> dict[str, int]:
    """Bytes of each part coded with the still codec's stream coder (``codec.streams``), and their sum.

    motion: the six integers as zigzag varints;
    status: one stream of SAME / CHANGED / REMOVED per reference Gaussian;
    means, cov, color: one stream per channel over the changed Gaussians;
    added: one stream per channel of the added Gaussians' means (cells on
    the position grid), covariances and colours. Each stream picks the
    smaller of a stored Laplace or histogram model, as in a v2 file.
    "total" adds ``PFRAME_OVERHEAD_BYTES`` for what the container will add.
    """
    check_delta(delta)

    def coded(values: np.ndarray) -> int:
        values = np.asarray(values, np.int64)
        if values.size == 0:
            return 0
        return sum(len(streams.encode_stream(values[:, c])) for c in range(values.shape[1]))

    out = {
        "status": len(streams.encode_stream(status(delta))),
        "means": coded(delta.d_means),
        "cov": coded(delta.d_cov),
        "color": coded(delta.d_color),
        "added": coded(delta.added_means) + coded(delta.added_cov) + coded(delta.added_color),
        "motion": sum(len(put_varint(streams.zigzag(int(v)))) for v in np.asarray(delta.motion)),
        "overhead": PFRAME_OVERHEAD_BYTES,
    }
    out["total"] = sum(out.values())
    return out

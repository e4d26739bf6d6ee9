"""All-I coding: every frame fitted and coded as its own still v2 ``.g2d`` file (the Gaussian baseline).

The frames are fitted together (``train.batch.fit_batch``: one vmapped
program over a leading frame axis; the frames of a sequence are
independent here, as the I-frames of several GOPs will be), then each fit
is fine-tuned and encoded by the still codec's public workflow
(``compress.compress_image`` with the fit given) at each rate-distortion
trade-off ``codec.lmbda``. Every figure is measured from the files and from
what their decoder renders (DESIGN.md section 5).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from gauss2d import compress
from gauss2d.settings import Settings
from gauss2d.train import batch as batch_lib


@dataclasses.dataclass
class IntraFrame:
    """One frame coded as a still file."""

    index: int
    bytes: int
    psnr: float  # of the decoded render against the frame
    encode_seconds: float  # its share of the batched fit + fine-tuning + encoding
    decode_seconds: float  # warm parse + entropy decode + render
    num_gaussians: int


@dataclasses.dataclass
class IntraPoint:
    """A whole sequence coded all-I at one ``lmbda``."""

    lmbda: float
    frames: list[IntraFrame]
    files: list[bytes]

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.frames)

    @property
    def psnr(self) -> float:
        """Mean over frames (as for the classic codecs)."""
        return float(np.mean([f.psnr for f in self.frames]))

    def bpp(self, height: int, width: int) -> float:
        return 8.0 * self.bytes / (len(self.frames) * height * width)


def with_lmbda(settings: Settings, lmbda: float) -> Settings:
    """``settings`` with ``codec.lmbda`` set (frozen: ``settings`` itself is unchanged)."""
    return settings.replace(codec=dataclasses.replace(settings.codec, lmbda=float(lmbda)))


def fit_frames(frames: np.ndarray, settings: Settings, key: jax.Array) -> tuple[list, float]:
    """Fits every frame of [T, H, W, 3] at once -> (per-frame fitted Gaussians, seconds)."""
    keys = [jax.random.fold_in(key, k) for k in range(frames.shape[0])]
    t0 = time.perf_counter()
    fits = batch_lib.fit_batch(frames, settings, keys)
    return [f.params for f in fits], time.perf_counter() - t0


def code_all_intra(
    frames: np.ndarray,  # [T, H, W, 3] in [0, 1]
    settings: Settings,
    lmbdas: Sequence[float],
    key: jax.Array,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[IntraPoint]:
    """Codes a sequence all-I at each ``lmbda``: one batched fit, then one still file per frame and lmbda.

    Args:
      frames: the sequence.
      settings: still codec settings (``configs.codec.get_settings``): model, optim, codec sections.
      lmbdas: ``codec.lmbda`` values, one RD point each.
      key: PRNG key; frame k's fit uses ``fold_in(key, k)``.
      progress: called with one line per coded frame.

    Returns:
      One ``IntraPoint`` per lmbda, in order.
    """
    fitted, fit_seconds = fit_frames(frames, settings, key)
    share = fit_seconds / frames.shape[0]
    points = []
    for lmbda in lmbdas:
        point_settings = with_lmbda(settings, lmbda)
        coded, files = [], []
        for k, (frame, params) in enumerate(zip(frames, fitted, strict=True)):
            t0 = time.perf_counter()
            result = compress.compress_image(frame, point_settings, jax.random.fold_in(key, k), params=params)
            s = result.summary
            record = IntraFrame(
                k,
                s["bytes"],
                s["psnr"],
                share + time.perf_counter() - t0,
                s["decode_seconds"],
                s["num_gaussians"],
            )
            coded.append(record)
            files.append(result.data)
            if progress is not None:
                progress(
                    f"lmbda {lmbda:g} frame {k} I {record.bytes} bytes {record.psnr:.2f} dB "
                    f"{record.encode_seconds:.1f} s"
                )
        points.append(IntraPoint(float(lmbda), coded, files))
    return points

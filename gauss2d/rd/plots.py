"""Rate-distortion plots: measured mean curves and published points on one axis (matplotlib)."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from gauss2d.io import checkpoint
from gauss2d.rd import published

# Measured methods first, in this order; anything else after them.
_ORDER = ("gauss2d", "gaussianimage_mode", "jpeg", "jpeg444", "webp", "jpeg2000", "avif", "heif")
LABELS = {
    "gauss2d": "gauss2d (this run)",
    "gaussianimage_mode": "gauss2d, GaussianImage file layout (this run)",
    "jpeg": "JPEG 4:2:0 (this run)",
    "jpeg444": "JPEG 4:4:4 (this run)",
    "webp": "WebP (this run)",
    "jpeg2000": "JPEG 2000 (this run)",
    "avif": "AVIF 4:4:4 (this run)",
    "heif": "HEIF / HEVC intra 4:4:4 (this run)",
    "gauss2d_v1": "gauss2d v1 file (benchmarks/RESULTS.md)",
}
AXIS_LABELS = {"psnr": "PSNR (dB)", "ms_ssim": "MS-SSIM"}
# One colour per codec, shared by its measured and published curves.
COLORS = {
    "gauss2d": "C0",
    "gaussianimage_mode": "C1",
    "gaussianimage": "C1",
    "jpeg": "C2",
    "jpeg444": "C3",
    "webp": "C4",
    "jpeg2000": "C5",
    "bpg444": "C6",
    "c3": "C7",
    "coin": "C8",
    "avif": "C9",
    "av1": "C9",
    "heif": "#7a5c00",
    "gauss2d_v1": "#1f3f7f",
    "vtm": "#000000",
    "coolchic": "#b5179e",
}


def plot_rd(
    curves: Mapping[str, Mapping[str, Any]],
    quality: str,
    path: str | pathlib.Path,
    *,
    published_curves: Mapping[str, published.PublishedCurve] | None = None,
    title: str = "",
    max_bpp: float | None = None,
) -> None:
    """Writes a PNG: quality vs bpp for every measured mean curve and published curve.

    Args:
      curves: ``study.mean_curves``'s output.
      quality: "psnr" or "ms_ssim".
      path: the PNG to write (atomically).
      published_curves: reference points to overlay (dashed, hollow markers).
      title: the figure title (say what data and settings the run used).
      max_bpp: clip the x axis (None: fit everything).

    Raises:
      ValueError: an unknown ``quality``.
    """
    if quality not in AXIS_LABELS:
        raise ValueError(f"{quality=} must be one of {tuple(AXIS_LABELS)}")
    import matplotlib  # noqa: PLC0415 (imported on use: the library does not need it otherwise)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(9, 5))
    order = [m for m in _ORDER if m in curves] + sorted(set(curves) - set(_ORDER))
    for method in order:
        curve = curves[method]
        pairs = [(b, q) for b, q in zip(curve["bpp"], curve[quality]) if q is not None]
        if pairs:
            bold = method == "gauss2d"
            ax.plot(
                *zip(*pairs),
                marker="o",
                linewidth=2.5 if bold else 1.5,
                label=LABELS.get(method, method),
                color=COLORS.get(method),
                zorder=3 if bold else 2,
            )
    for curve in (published_curves or {}).values():
        points = curve.psnr_points() if quality == "psnr" else curve.ms_ssim_points()
        if points is not None:
            ax.plot(
                *points,
                linestyle="--",
                marker="s",
                fillstyle="none",
                alpha=0.7,
                color=COLORS.get(curve.method),
                label=f"{curve.label} (published)",
            )
    ax.set(xlabel="bits per pixel (from the file bytes)", ylabel=AXIS_LABELS[quality], title=title)
    if max_bpp is not None:
        ax.set_xlim(0, max_bpp)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over a curve
    fig.tight_layout()
    with checkpoint.atomic_write(pathlib.Path(path)) as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)

"""The rate-distortion table: rows per image and point, mean curves, Bjontegaard comparisons.

``experiments.rd_sweep`` measures rows; this module turns them into what a
paper reports. A row is one (image, method, operating point) measurement:
``image, method, point, bytes, bpp, psnr, ms_ssim`` (``point`` is the
number of Gaussians for gauss2d, the codec's quality knob otherwise;
``ms_ssim`` is None for images too small for it). Mean curves average bpp,
PSNR and MS-SSIM over the images at each point, as the GaussianImage paper
and most codec papers do for Kodak; BD-rates compare those mean curves.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gauss2d.rd import bjontegaard, published

COLUMNS = ("image", "method", "point", "bytes", "bpp", "psnr", "ms_ssim")
QUALITIES = ("psnr", "ms_ssim")


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as CSV text with a header (``COLUMNS``); None becomes an empty cell."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in COLUMNS})
    return out.getvalue()


def mean_curves(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method, the mean over images at each point, points sorted by mean bpp.

    A point counts only when every image of the study has it (a partial
    sweep must not mix image sets along one curve); MS-SSIM is None at a
    point where any image lacks it.

    Returns:
      method -> {"point": [K], "bpp": [K], "psnr": [K], "ms_ssim": [K] (or
      None entries), "images": number of images averaged}.
    """
    images = sorted({r["image"] for r in rows})
    by_point: dict[str, dict[Any, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_point[r["method"]][r["point"]].append(r)
    curves = {}
    for method, points in by_point.items():
        complete = [(p, rs) for p, rs in points.items() if sorted(r["image"] for r in rs) == images]
        means = []
        for point, rs in complete:
            ms = [r["ms_ssim"] for r in rs]
            means.append(
                {
                    "point": point,
                    "bpp": _mean(r["bpp"] for r in rs),
                    "psnr": _mean(r["psnr"] for r in rs),
                    "ms_ssim": None if any(m is None for m in ms) else _mean(ms),
                }
            )
        means.sort(key=lambda m: m["bpp"])
        curves[method] = {k: [m[k] for m in means] for k in ("point", "bpp", "psnr", "ms_ssim")}
        curves[method]["images"] = len(images)
    return curves


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return math.fsum(values) / len(values)


def _points(curve: Mapping[str, Any], quality: str) -> tuple[list[float], list[float]] | None:
    """(bpp, quality) of a measured mean curve, or None when the quality is missing anywhere."""
    q = curve[quality]
    if not q or any(v is None for v in q):
        return None
    return list(curve["bpp"]), list(q)


def _published_points(curve: published.PublishedCurve, quality: str):
    return curve.psnr_points() if quality == "psnr" else curve.ms_ssim_points()


def compare(anchor, test) -> dict[str, Any]:
    """BD-rate (%) and BD-PSNR-style quality gap of ``test`` against ``anchor``, each (bpp, quality).

    Returns:
      {"bd_rate": float, "bd_quality": float} or {"error": message} when the
      curves cannot be compared (too few points, not monotonic, no overlap).
    """
    try:
        return {
            "bd_rate": bjontegaard.bd_rate(anchor[0], anchor[1], test[0], test[1]),
            "bd_quality": bjontegaard.bd_psnr(anchor[0], anchor[1], test[0], test[1]),
        }
    except bjontegaard.BjontegaardError as err:
        return {"error": str(err)}


def bd_summary(
    curves: Mapping[str, Mapping[str, Any]],
    test: str = "gauss2d",
    published_curves: Mapping[str, published.PublishedCurve] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """BD-rate of ``test``'s mean curve against every other measured curve and each published one.

    Negative BD-rate: ``test`` needs fewer bits for the same quality.
    ``bd_quality`` is the mean quality gain at equal rate (dB for PSNR, plain
    MS-SSIM units for MS-SSIM).

    Returns:
      quality ("psnr" / "ms_ssim") -> anchor name (a measured method, or
      "published:<method>") -> ``compare``'s dict. Empty when ``test`` has no
      curve.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if test not in curves:
        return out
    for quality in QUALITIES:
        ours = _points(curves[test], quality)
        if ours is None:
            continue
        table = {}
        for method, curve in curves.items():
            anchor = _points(curve, quality)
            if method != test and anchor is not None:
                table[method] = compare(anchor, ours)
        for method, curve in (published_curves or {}).items():
            anchor = _published_points(curve, quality)
            if anchor is not None:
                table[f"published:{method}"] = compare(anchor, ours)
        out[quality] = table
    return out

"""The rate-distortion table: rows per image and point, mean curves, Bjontegaard comparisons.

``experiments.rd_sweep`` measures rows; this module turns them into what a
paper reports. A row is one (image, method, operating point) measurement:
``image, method, point, bytes, bpp, psnr, ms_ssim`` (``point`` is the
number of Gaussians for gauss2d, the codec's quality knob otherwise;
``ms_ssim`` is None for images too small for it). Mean curves average bpp,
PSNR and MS-SSIM over the images at each point, as the GaussianImage paper
and most codec papers do for Kodak; BD-rates compare those mean curves.

Settings are chosen on some images (``rd.tuning_images``, kodim01-04) and
must be judged on others: ``group_bd`` reports, for the tuning images and
for the held-out rest separately, both the BD-rate of the group's mean
curve and the mean / median of the per-image BD-rates (``per_image_bd``:
each image's own curve against each anchor's curve on the same image).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
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


def per_image_bd(rows: Sequence[Mapping[str, Any]], test: str = "gauss2d") -> dict[str, dict[str, dict]]:
    """Per image, ``test``'s curve on that image against every other method's on it.

    Returns:
      image -> quality -> anchor method -> ``compare``'s dict (an image whose
      curves cannot be compared gets ``{"error": ...}`` for that anchor).
    """
    out: dict[str, dict[str, dict]] = {}
    for image in sorted({r["image"] for r in rows}):
        curves = mean_curves([r for r in rows if r["image"] == image])
        out[image] = bd_summary(curves, test)
    return out


def group_bd(
    rows: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[str]], test: str = "gauss2d"
) -> dict[str, dict[str, Any]]:
    """BD-rates of ``test`` on each group of images (e.g. tuning / held out), two ways.

    Args:
      rows: the study's rows.
      groups: group name -> image names; images not in ``rows`` are ignored,
        and a group with none of its images is left out.
      test: the method judged.

    Returns:
      group -> {"images": [...], "mean_curve": ``bd_summary`` of the group's
      mean curves, "per_image": quality -> anchor -> {"mean", "median",
      "images" (compared), "failed" (not comparable)} of the per-image BD-rates}.
    """
    per_image = per_image_bd(rows, test)
    out: dict[str, dict[str, Any]] = {}
    for name, members in groups.items():
        images = sorted(set(members) & set(per_image))
        if not images:
            continue
        stats: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        anchors = {(q, a) for i in images for q, table in per_image[i].items() for a in table}
        for quality, anchor in sorted(anchors):
            entries = [per_image[i].get(quality, {}).get(anchor, {}) for i in images]
            rates = [e["bd_rate"] for e in entries if "bd_rate" in e]
            stats[quality][anchor] = {
                "mean": _mean(rates) if rates else None,
                "median": statistics.median(rates) if rates else None,
                "images": len(rates),
                "failed": len(entries) - len(rates),
            }
        group_rows = [r for r in rows if r["image"] in images]
        out[name] = {
            "images": images,
            "mean_curve": bd_summary(mean_curves(group_rows), test),
            "per_image": dict(stats),
        }
    return out


def split_groups(images: Sequence[str], tuning: Sequence[str]) -> dict[str, list[str]]:
    """{"tuning": the images settings were chosen on, "held_out": the rest} of ``images``."""
    chosen = set(tuning)
    return {
        "tuning": sorted(i for i in images if i in chosen),
        "held_out": sorted(i for i in images if i not in chosen),
    }

"""Published Kodak rate-distortion points, kept as data with their source so every plot can be rebuilt.

The numbers live in ``published.json`` beside this module (shipped as package
data), one entry per method with its source; this module loads and checks
them once, at import.

Rates are bits per pixel averaged over the 24 Kodak images; PSNR is in dB on
RGB; MS-SSIM is the plain (not dB) score. The numbers are those in the
project's reference notes (../shared/REFERENCE.md, "Published results to
beat" and "The official compression recipe"), which were read from the
GaussianImage paper's Kodak rate-distortion figure: treat them as figure
readings (about +-0.1 dB), not as tabulated values.

Where a method's PSNR and MS-SSIM were published at different rates
(GaussianImage: PSNR read at five rates, MS-SSIM given at its six operating
points), the MS-SSIM rates are stored separately in ``ms_ssim_bpp``, so one
method stays one curve; use ``psnr_points()`` / ``ms_ssim_points()`` rather
than pairing the fields by hand.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any

from gauss2d.errors import Gauss2dError

DATA_FILE = pathlib.Path(__file__).with_name("published.json")


@dataclasses.dataclass(frozen=True)
class PublishedCurve:
    """One method's published rate-distortion points on Kodak.

    Attributes:
        method: key in ``KODAK`` (lower case, no spaces).
        label: legend label for plots.
        bpp: [K] rates of the PSNR points, strictly increasing.
        psnr: [K] PSNR in dB at ``bpp``, or None when not published.
        ms_ssim: [J] MS-SSIM, or None when not published.
        source: the paper the numbers come from, and whether they were read from a figure.
        note: caveats (approximate readings, implementation used, operating points).
        ms_ssim_bpp: [J] rates of the MS-SSIM points when they differ from ``bpp``;
            None means ``ms_ssim`` is given at ``bpp``.
    """

    method: str
    label: str
    bpp: tuple[float, ...]
    psnr: tuple[float, ...] | None
    ms_ssim: tuple[float, ...] | None
    source: str
    note: str
    ms_ssim_bpp: tuple[float, ...] | None = None

    def __post_init__(self):
        # Catch transcription slips (a dropped or extra number) wherever a curve is built.
        if self.psnr is not None and len(self.psnr) != len(self.bpp):
            raise ValueError(f"{self.method}: {len(self.bpp)} bpp values but {len(self.psnr)} PSNR values")
        if self.ms_ssim is not None:
            rates = self.bpp if self.ms_ssim_bpp is None else self.ms_ssim_bpp
            if len(self.ms_ssim) != len(rates):
                raise ValueError(
                    f"{self.method}: {len(rates)} MS-SSIM rates but {len(self.ms_ssim)} MS-SSIM values"
                )
        elif self.ms_ssim_bpp is not None:
            raise ValueError(f"{self.method}: ms_ssim_bpp given without ms_ssim")

    def psnr_points(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """(bpp [K], PSNR [K]) or None when no PSNR was published."""
        return None if self.psnr is None else (self.bpp, self.psnr)

    def ms_ssim_points(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """(bpp [J], MS-SSIM [J]) or None when no MS-SSIM was published."""
        if self.ms_ssim is None:
            return None
        return (self.bpp if self.ms_ssim_bpp is None else self.ms_ssim_bpp), self.ms_ssim


_TEXT_FIELDS = ("method", "label", "source", "note")
_SERIES_FIELDS = ("bpp", "psnr", "ms_ssim", "ms_ssim_bpp")
_OPTIONAL_SERIES = ("psnr", "ms_ssim", "ms_ssim_bpp")


def _series(entry: dict[str, Any], field: str, where: str) -> tuple[float, ...] | None:
    """The list ``entry[field]`` as a tuple of finite floats, or None where it is null/absent."""
    value = entry.get(field)
    if value is None:
        if field not in _OPTIONAL_SERIES:
            raise Gauss2dError(f"{where}: {field!r} is missing; expected a list of numbers")
        return None
    ok = isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok:
        raise Gauss2dError(f"{where}: {field!r} must be a list of finite numbers, got {value!r}")
    return tuple(float(v) for v in value)


def _curve(entry: Any, where: str) -> PublishedCurve:
    """One checked curve from one JSON entry; every error names the entry."""
    if not isinstance(entry, dict):
        raise Gauss2dError(f"{where}: expected an object, got {type(entry).__name__}")
    if isinstance(entry.get("method"), str):
        where = f"{where} ({entry['method']!r})"
    unknown = sorted(set(entry) - set(_TEXT_FIELDS) - set(_SERIES_FIELDS))
    if unknown:
        raise Gauss2dError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for field in _TEXT_FIELDS:
        if not isinstance(entry.get(field), str) or not entry[field].strip():
            raise Gauss2dError(f"{where}: {field!r} must be a non-empty string")
    series = {field: _series(entry, field, where) for field in _SERIES_FIELDS}
    if series["psnr"] is None and series["ms_ssim"] is None:
        raise Gauss2dError(f"{where}: neither 'psnr' nor 'ms_ssim' is given")
    try:
        curve_ = PublishedCurve(**{f: entry[f] for f in _TEXT_FIELDS}, **series)
    except ValueError as e:
        raise Gauss2dError(f"{where}: {e}") from None
    # bd_rate / bd_psnr need rates, and quality along them, strictly increasing.
    for name, points in (("PSNR", curve_.psnr_points()), ("MS-SSIM", curve_.ms_ssim_points())):
        if points is None:
            continue
        rates, quality = points
        if len(rates) < 2 or rates[0] <= 0:
            raise Gauss2dError(f"{where}: {name} curve needs >= 2 points at positive rates, got {rates}")
        if any(b <= a for a, b in zip(rates, rates[1:])):
            raise Gauss2dError(f"{where}: {name} rates are not strictly increasing: {rates}")
        if any(b <= a for a, b in zip(quality, quality[1:])):
            raise Gauss2dError(f"{where}: {name} values do not increase with rate: {quality}")
    return curve_


def load(path: str | pathlib.Path = DATA_FILE) -> dict[str, PublishedCurve]:
    """Reads and checks a published-curves file.

    Args:
        path: a JSON file ``{"curves": [{"method", "label", "source", "note",
            "bpp", "psnr", "ms_ssim", "ms_ssim_bpp"}, ...]}``; ``psnr``,
            ``ms_ssim`` and ``ms_ssim_bpp`` may be null or absent.

    Returns:
        The curves keyed by method, in file order.

    Raises:
        Gauss2dError: unreadable JSON, or an entry that is malformed (the
            message names the file and the entry).
    """
    path = pathlib.Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise Gauss2dError(f"{path}: cannot read published curves: {e}") from None
    entries = doc.get("curves") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise Gauss2dError(f"{path}: expected an object with a non-empty list 'curves'")
    curves: dict[str, PublishedCurve] = {}
    for i, entry in enumerate(entries):
        c = _curve(entry, f"{path.name}: curve {i}")
        if c.method in curves:
            raise Gauss2dError(f"{path.name}: curve {i}: method {c.method!r} appears twice")
        curves[c.method] = c
    return curves


KODAK: dict[str, PublishedCurve] = load()


def curve(method: str) -> PublishedCurve:
    """The published Kodak curve of ``method``.

    Args:
        method: a key of ``KODAK``, e.g. "gaussianimage" or "jpeg".

    Returns:
        The curve.

    Raises:
        Gauss2dError: for an unknown method; the message lists the known ones.
    """
    try:
        return KODAK[method]
    except KeyError:
        raise Gauss2dError(
            f"no published Kodak curve for {method!r}; known methods: {', '.join(KODAK)}"
        ) from None

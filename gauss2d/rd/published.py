"""Published Kodak rate-distortion points, kept as data with their source so every plot can be rebuilt.

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

from gauss2d.errors import Gauss2dError

_GAUSSIANIMAGE_PAPER = (
    "Zhang et al., 'GaussianImage: 1000 FPS Image Representation and Compression by 2D Gaussian "
    "Splatting', ECCV 2024 (arXiv:2403.08551)"
)
_FIGURE = f"as reported in the Kodak compression (rate-distortion) figure of {_GAUSSIANIMAGE_PAPER}"


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
        # Catch transcription slips (a dropped or extra number) when the module is imported.
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


# The classic codecs and the INR codecs were read at the same three rates.
_RATES_3 = (0.25, 0.5, 1.0)

KODAK: dict[str, PublishedCurve] = {
    "gaussianimage": PublishedCurve(
        method="gaussianimage",
        label="GaussianImage",
        bpp=(0.12, 0.25, 0.5, 1.0, 1.29),
        psnr=(24.65, 26.2, 27.8, 29.65, 30.5),
        # The six operating points: 800 / 1000 / 3000 / 5000 / 7000 / 9000 Gaussians.
        ms_ssim_bpp=(0.118, 0.147, 0.432, 0.717, 1.001, 1.286),
        ms_ssim=(0.837, 0.855, 0.923, 0.946, 0.957, 0.965),
        source=f"{_GAUSSIANIMAGE_PAPER}, Kodak compression figure; PSNR read from the figure",
        note=(
            "Official recipe: FP16 means, 6-bit Cholesky, 2-stage residual VQ colour, no entropy coding. "
            "PSNR at 0.25 and 0.5 bpp is marked approximate (~) in the reference notes; the ~0.12 and 1.29 "
            "bpp PSNR points presumably are the 800- and 9000-Gaussian operating points (0.118, 1.286 bpp) "
            "and are kept at the rounded rates the notes give. MS-SSIM is given at the six operating points. "
            "The reference notes give its Kodak BD-rate against JPEG as about +11.5%."
        ),
    ),
    "jpeg": PublishedCurve(
        method="jpeg",
        label="JPEG (Pillow)",
        bpp=_RATES_3,
        psnr=(24.66, 28.95, 32.59),
        ms_ssim=None,
        source=f"JPEG via Pillow, {_FIGURE}; read from the figure",
        note="Encoded with Pillow; encoder settings (quality steps, chroma subsampling) not recorded.",
    ),
    "webp": PublishedCurve(
        method="webp",
        label="WebP (Pillow)",
        bpp=_RATES_3,
        psnr=(28.55, 31.32, 35.11),
        ms_ssim=None,
        source=f"WebP via Pillow, {_FIGURE}; read from the figure",
        note="Lossy WebP encoded with Pillow; encoder settings not recorded.",
    ),
    "jpeg2000": PublishedCurve(
        method="jpeg2000",
        label="JPEG2000",
        bpp=_RATES_3,
        psnr=(28.57, 31.27, 34.71),
        ms_ssim=None,
        source=f"JPEG 2000, {_FIGURE}; read from the figure",
        note="Implementation not named in the reference notes.",
    ),
    "bpg444": PublishedCurve(
        method="bpg444",
        label="BPG 4:4:4",
        bpp=_RATES_3,
        psnr=(30.32, 33.32, 37.16),
        ms_ssim=None,
        source=f"BPG (Bellard, HEVC intra) with 4:4:4 chroma, {_FIGURE}; read from the figure",
        note="4:4:4 chroma, i.e. no chroma subsampling.",
    ),
    "c3": PublishedCurve(
        method="c3",
        label="C3",
        bpp=_RATES_3,
        psnr=(30.92, 34.22, 38.46),
        ms_ssim=None,
        source=(
            "Kim et al., 'C3: High-performance and low-complexity neural compression from a single image "
            f"or video', CVPR 2024; Kodak points {_FIGURE}; read from the figure"
        ),
        note="A per-image overfitted neural codec in JAX; the strongest curve in this set.",
    ),
    "coin": PublishedCurve(
        method="coin",
        label="COIN",
        bpp=_RATES_3,
        psnr=(25.85, 27.83, 30.02),
        ms_ssim=None,
        source=(
            "Dupont et al., 'COIN: COmpression with Implicit Neural representations', ICLR 2021 "
            f"Neural Compression workshop (arXiv:2103.03123); Kodak points {_FIGURE}; read from the figure"
        ),
        note="A per-image implicit neural representation (SIREN) whose weights are the bitstream.",
    ),
    "vtm": PublishedCurve(
        method="vtm",
        label="VTM (VVC intra)",
        bpp=_RATES_3,
        psnr=(31.3, 34.4, 38.2),
        ms_ssim=None,
        source=(
            "VVC reference software VTM, intra; Kodak PSNR at 0.25 / 0.5 / 1.0 bpp as gathered in the "
            "project's reference notes ('Where the field is', 2026-12), read from the published figures"
        ),
        note="Approximate (+-0.1 dB) readings of published curves; RGB PSNR.",
    ),
    "av1": PublishedCurve(
        method="av1",
        label="AV1 intra (~AVIF)",
        bpp=_RATES_3,
        psnr=(30.5, 33.7, 37.6),
        ms_ssim=None,
        source=(
            "AV1 intra (the coder inside AVIF); Kodak PSNR at 0.25 / 0.5 / 1.0 bpp as gathered in the "
            "project's reference notes ('Where the field is', 2026-12), read from the published figures"
        ),
        note="Approximate readings; the measured 'avif' baseline (Pillow, 4:4:4) is the like-for-like one.",
    ),
    "coolchic": PublishedCurve(
        method="coolchic",
        label="Cool-chic 5",
        bpp=_RATES_3,
        psnr=(31.5, 34.7, 39.1),
        ms_ssim=None,
        source=(
            "Orange Cool-chic 5 (open source, github.com/Orange-OpenSource/Cool-Chic), -3.9% BD-rate vs VTM "
            "at ~2000 MAC/pixel; Kodak PSNR from the project's reference notes (2026-12), read from figures"
        ),
        note="Approximate readings of the published curve; overfitted neural codec, D + lambda R.",
    ),
}


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

"""Tests of gauss2d.rd.baselines: classic codecs through Pillow, rate from the real bytes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import features

from gauss2d.errors import Gauss2dError
from gauss2d.io import images as data
from gauss2d.rd import baselines

_MISSING = baselines.unavailable_codecs()
# One parameter per codec, skipped (with Pillow's reason) where the installed Pillow lacks it.
_CODEC_PARAMS = [
    pytest.param(c, marks=pytest.mark.skipif(c in _MISSING, reason=_MISSING.get(c, "")))
    for c in baselines.CODECS
]


@pytest.fixture(scope="module")
def sample() -> np.ndarray:  # [256, 384, 3] float32
    return data.load_image(data.sample_image_path())


@pytest.fixture(scope="module")
def default_sweeps(sample: np.ndarray) -> dict[str, list[baselines.BaselinePoint]]:
    """Every available codec over its default qualities on the sample, computed once (~8 s)."""
    return baselines.sweep_available(sample, warn=lambda message: None)


def _psnr_float64(decoded: np.ndarray, image: np.ndarray) -> float:
    """Independent PSNR in float64 against the 8-bit quantised image, data range 1."""
    reference = np.round(image.astype(np.float64) * 255.0) / 255.0
    mse = np.mean((decoded.astype(np.float64) - reference) ** 2)
    return float(10.0 * np.log10(1.0 / mse))


@pytest.mark.parametrize("codec", _CODEC_PARAMS)
@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (16, 24)])
def test_round_trip_shape_dtype(sample: np.ndarray, codec: str, shape: tuple[int, int]) -> None:
    # Odd sizes are not multiples of JPEG's 16x16 4:2:0 macroblocks nor of WebP's 16x16 blocks.
    image = sample[: shape[0], : shape[1]]
    top = baselines.DEFAULT_QUALITIES[codec][-1]
    decoded = baselines.decode(baselines.encode(image, codec, top))
    assert decoded.shape == (*shape, 3)
    assert decoded.dtype == np.float32
    assert decoded.min() >= 0.0 and decoded.max() <= 1.0
    # Tiny images are mostly header (JPEG 2000's rate target counts its ~80-byte header too),
    # so only the biggest must come back close.
    if min(shape) > 32:
        assert _psnr_float64(decoded, image) > 25.0


@pytest.mark.parametrize("codec", _CODEC_PARAMS)
def test_measure_matches_independent_rate_and_psnr(sample: np.ndarray, codec: str) -> None:
    quality = baselines.DEFAULT_QUALITIES[codec][len(baselines.DEFAULT_QUALITIES[codec]) // 2]
    point = baselines.measure(sample, codec, quality)
    encoded = baselines.encode(sample, codec, quality)  # The encoders are deterministic.
    height, width = sample.shape[:2]
    assert point.method == codec and point.quality == quality
    assert point.num_bytes == len(encoded)
    assert point.bpp == pytest.approx(8 * len(encoded) / (height * width), rel=1e-12)
    # metrics.psnr works in float32; 1e-3 dB is far above its rounding, far below any real change.
    assert point.psnr == pytest.approx(_psnr_float64(baselines.decode(encoded), sample), abs=1e-3)
    assert point.ms_ssim is not None and 0.5 < point.ms_ssim <= 1.0


def test_reference_is_8bit_quantised_image(sample: np.ndarray) -> None:
    # An image off the 8-bit grid gives the same point as its rounding: the codec sees only that.
    rng = np.random.default_rng(0)
    image = sample[:64, :64]
    jittered = np.clip(image + rng.uniform(-0.4, 0.4, image.shape) / 255.0, 0.0, 1.0).astype(np.float32)
    assert np.array_equal(np.round(jittered * 255.0), np.round(image * 255.0))
    assert baselines.measure(jittered, "jpeg", 50) == baselines.measure(image, "jpeg", 50)


@pytest.mark.parametrize("codec", _CODEC_PARAMS)
def test_default_sweep_monotone_and_sorted(default_sweeps: dict, codec: str) -> None:
    points = default_sweeps[codec]
    assert [p.method for p in points] == [codec] * len(points)
    assert sorted(p.quality for p in points) == sorted(baselines.DEFAULT_QUALITIES[codec])
    assert [p.bpp for p in points] == sorted(p.bpp for p in points)
    by_quality = sorted(points, key=lambda p: p.quality)
    num_bytes = [p.num_bytes for p in by_quality]
    psnrs = [p.psnr for p in by_quality]
    assert all(a < b for a, b in zip(num_bytes, num_bytes[1:])), num_bytes
    assert all(a < b for a, b in zip(psnrs, psnrs[1:])), psnrs


@pytest.mark.parametrize("codec", _CODEC_PARAMS)
def test_default_sweep_spans_low_to_high_rate(default_sweeps: dict, codec: str) -> None:
    # Measured on the sample (Pillow 13): lowest bpp 0.10-0.20 (JPEG 4:4:4 highest, its
    # chroma is not subsampled), highest 1.85-2.44. Bounds 0.25 and 1.5 leave room for other
    # libjpeg/libwebp/OpenJPEG versions yet fail if a sweep loses its low or high end.
    bpps = [p.bpp for p in default_sweeps[codec]]
    assert min(bpps) < 0.25, bpps
    assert max(bpps) > 1.5, bpps


@pytest.mark.skipif("jpeg" in _MISSING, reason=_MISSING.get("jpeg", ""))
def test_jpeg444_costs_more_and_is_better_than_420(default_sweeps: dict) -> None:
    jpeg420 = {p.quality: p for p in default_sweeps["jpeg"]}
    jpeg444 = {p.quality: p for p in default_sweeps["jpeg444"]}
    for quality, point in jpeg420.items():
        assert jpeg444[quality].num_bytes > point.num_bytes, quality
        assert jpeg444[quality].psnr > point.psnr, quality


@pytest.mark.skipif("jpeg2000" in _MISSING, reason=_MISSING.get("jpeg2000", ""))
def test_jpeg2000_meets_target_rate(default_sweeps: dict) -> None:
    # The knob is a bpp target; OpenJPEG's rate control meets it within ~1% (2% allowed),
    # plus 16 bytes: at the lowest target (0.03 bpp, 368 bytes on the 384x256 sample) it
    # wrote 384, its codestream's fixed marker segments rather than its rate control.
    for point in default_sweeps["jpeg2000"]:
        pixels = 8 * point.num_bytes / point.bpp
        assert point.bpp == pytest.approx(point.quality, abs=0.02 * point.quality + 8 * 16 / pixels)


@pytest.mark.parametrize(
    "payload",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + bytes(40)],
    ids=["empty", "text", "png-header"],
)
def test_decode_garbage_raises(payload: bytes) -> None:
    with pytest.raises(Gauss2dError, match="not a JPEG, WebP or JPEG 2000 file"):
        baselines.decode(payload)


@pytest.mark.parametrize("codec", _CODEC_PARAMS)
def test_decode_truncated_raises(sample: np.ndarray, codec: str) -> None:
    encoded = baselines.encode(sample[:64, :64], codec, baselines.DEFAULT_QUALITIES[codec][-1])
    with pytest.raises(Gauss2dError, match="JPEG, WebP or JPEG 2000"):
        baselines.decode(encoded[: len(encoded) // 2])


def test_unknown_codec_raises(sample: np.ndarray) -> None:
    image = sample[:16, :16]
    for call in (
        lambda: baselines.encode(image, "png", 50),
        lambda: baselines.measure(image, "png", 50),
        lambda: baselines.sweep(image, "png"),
        lambda: baselines.sweep_available(image, codecs=("jpeg", "png")),
    ):
        with pytest.raises(Gauss2dError, match=r"unknown codec 'png'.*jpeg, jpeg444, webp, jpeg2000"):
            call()


@pytest.mark.parametrize(
    ("codec", "quality", "message"),
    [
        ("jpeg", 0, r"JPEG quality 0 .*\[1, 100\]"),
        ("jpeg444", 101, r"JPEG quality 101 .*\[1, 100\]"),
        ("jpeg", 50.5, r"integer in \[1, 100\], got 50.5"),
        ("jpeg", float("nan"), r"got nan"),
        ("webp", -1, r"WebP quality -1 .*\[0, 100\]"),
        ("webp", 100.5, r"WebP quality 100.5 .*\[0, 100\]"),
        ("jpeg2000", 0, r"target bpp 0 .*\(0, 24\]"),
        ("jpeg2000", 25, r"target bpp 25 .*\(0, 24\]"),
    ],
)
def test_bad_quality_raises(sample: np.ndarray, codec: str, quality: float, message: str) -> None:
    with pytest.raises(Gauss2dError, match=message):
        baselines.encode(sample[:16, :16], codec, quality)
    with pytest.raises(Gauss2dError, match=message):  # sweep checks every quality before encoding.
        baselines.sweep(sample[:16, :16], codec, [baselines.DEFAULT_QUALITIES[codec][0], quality])


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((8, 8), np.float32),
        np.zeros((8, 8, 4), np.float32),
        np.zeros((0, 8, 3), np.float32),
        np.zeros((8, 8, 3), np.uint8),
        np.full((8, 8, 3), 1.5, np.float32),
        np.full((8, 8, 3), np.nan, np.float32),
    ],
    ids=["2d", "rgba", "empty", "uint8", "above-1", "nan"],
)
def test_bad_image_raises(image: np.ndarray) -> None:
    with pytest.raises(Gauss2dError, match=rf"shape \({image.shape[0]}, {image.shape[1]}"):
        baselines.encode(image, "jpeg", 50)


def _webp_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes PIL.features.check report WebP missing and everything else present."""
    monkeypatch.setattr(features, "check", lambda feature: feature != "webp")


def test_unavailable_codecs_reports_only_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "check", lambda feature: True)
    # heif comes from the optional pillow-heif plugin, not from Pillow's features.
    heif = ["heif"] if baselines._heif_plugin() is None else []
    assert list(baselines.unavailable_codecs()) == heif
    _webp_missing(monkeypatch)
    missing = baselines.unavailable_codecs()
    assert list(missing) == ["webp"] + heif
    assert "libwebp" in missing["webp"] and "pip install" in missing["webp"]
    with pytest.raises(Gauss2dError, match=r"cannot encode webp: .*Pillow.*libwebp"):
        baselines.encode(np.zeros((8, 8, 3), np.float32), "webp", 50)


def test_sweep_available_skips_missing_and_runs_the_rest(
    sample: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    _webp_missing(monkeypatch)
    warnings = []
    qualities = {"jpeg": [20, 80], "jpeg444": [50], "jpeg2000": [0.5]}
    codecs = ("jpeg", "jpeg444", "webp", "jpeg2000")  # Pillow's own; avif/heif have tests of their own above
    results = baselines.sweep_available(sample[:64, :64], codecs, qualities=qualities, warn=warnings.append)
    assert len(warnings) == 1
    assert warnings[0].startswith("webp skipped: ") and "WebP" in warnings[0]
    assert list(results) == ["jpeg", "jpeg444", "jpeg2000"]
    assert {codec: [p.quality for p in points] for codec, points in results.items()} == qualities
    # 64x64 is below MS-SSIM's minimum side (161): None, not a crash.
    assert all(p.ms_ssim is None for points in results.values() for p in points)

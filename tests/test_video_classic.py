"""The classic video yardstick (gauss2d.video.classic): real bits, PSNR on RGB 8-bit, skipped encoders."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av", reason="PyAV (the video extra) is not installed")

from gauss2d.video import classic, sequences  # noqa: E402

H264 = classic.ENCODERS[0]


@pytest.fixture(scope="module")
def clip():
    return sequences.pan_zoom(sequences.sample_frame(64, 96), 5, 32, 48)


def _psnr(a, b):  # independent: float64 NumPy
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(1.0 / mse)


def test_a_point_counts_the_packets_and_the_psnr_of_every_decoded_frame(clip):
    point = classic.measure(clip, H264, 23, "yuv444p")
    packets, _ = classic.encode_sequence(np.round(clip * 255).astype(np.uint8), H264, 23, "yuv444p")
    assert point.bytes == sum(len(p) for p in packets) > 0
    assert point.bpp == pytest.approx(8 * point.bytes / (5 * 32 * 48))
    decoded, _ = classic.decode_packets(packets, H264)
    reference = np.round(clip * 255) / 255
    expect = [_psnr(d / 255.0, r) for d, r in zip(decoded, reference, strict=True)]
    np.testing.assert_allclose(point.frame_psnr, expect, atol=1e-3)
    assert point.psnr == pytest.approx(np.mean(expect), abs=1e-3)


def test_a_lower_crf_spends_more_bits_for_a_higher_psnr(clip):
    fine, coarse = (classic.measure(clip, H264, crf, "yuv420p") for crf in (12, 36))
    assert fine.bytes > coarse.bytes and fine.psnr > coarse.psnr + 3


def test_missing_encoders_are_reported_and_skipped(clip):
    fake = classic.Encoder("nope", "no-such-encoder", "h264", ("yuv420p",), (20,))
    assert "no-such-encoder" in classic.unavailable([fake])["nope"]
    points, skipped = classic.sweep(
        clip, [fake, classic.Encoder("h264", "libx264", "h264", ("yuv420p",), (30,))]
    )
    assert [p.method for p in points] == ["h264/yuv420p"] and "nope" in skipped


def test_sizes_below_an_encoders_minimum_are_refused_before_it_opens():
    h265 = next(e for e in classic.ENCODERS if e.name == "h265")
    assert h265.min_side == 16
    tiny = sequences.pan_zoom(sequences.sample_frame(32, 32), 3, 12, 12)
    with pytest.raises(classic.Gauss2dError, match="libx265 needs frames of at least 16x16 px, got 12x12"):
        classic.measure(tiny, h265, 23, "yuv444p")
    points, skipped = classic.sweep(tiny, [H264, h265])
    assert "16 px a side" in skipped["h265"]
    assert {p.method for p in points} == {"h264/yuv444p", "h264/yuv420p"}


def test_an_encoder_error_is_one_line_not_a_traceback(clip):
    picky = classic.Encoder("h264", "libx264", "h264", ("yuv444p",), (23,), (("crf", "not-a-number"),))
    with pytest.raises(classic.Gauss2dError, match="libx264 cannot encode 48x32 yuv444p"):
        classic.measure(clip, picky, 23, "yuv444p")

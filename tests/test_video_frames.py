"""gauss2d.video.frames: a folder of frames, a video file through PyAV (round trip), the error paths."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gauss2d.errors import Gauss2dError, ImageError
from gauss2d.video import frames, sequences


@pytest.fixture(scope="module")
def clip():
    return sequences.moving_object(sequences.sample_frame(32, 48), 6)  # [6, 32, 48, 3]


def test_folder_round_trip_in_name_order(tmp_path, clip):
    names = [f"f{k:02d}.png" for k in range(len(clip))][::-1]  # written in reverse, read sorted
    frames.write_frames(tmp_path, clip[::-1], names)
    back = frames.read_frames(tmp_path)
    np.testing.assert_array_equal(back, frames.to_uint8(clip) / np.float32(255.0))
    assert frames.read_frames(tmp_path, max_frames=2).shape == (2, 32, 48, 3)


def test_folder_of_mixed_sizes_names_the_odd_frame(tmp_path, clip):
    frames.write_frames(tmp_path, clip[:2])
    Image.new("RGB", (10, 10)).save(tmp_path / "frame_00002.png")
    with pytest.raises(ImageError, match=r"frame_00002.png' is 10x10.*one size"):
        frames.read_frames(tmp_path)


def test_memory_budget_is_checked_before_decoding(tmp_path, clip, monkeypatch):
    frames.write_frames(tmp_path, clip)
    decoded = []
    monkeypatch.setattr(frames.images, "load_image", lambda *a, **k: decoded.append(a) or clip[0])
    with pytest.raises(ImageError, match="memory_limit_gb=1e-05"):
        frames.read_frames(tmp_path, memory_limit_gb=1e-5)
    assert not decoded  # refused from the headers alone


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        frames.read_frames(tmp_path / "nothing")
    with pytest.raises(ImageError, match="no images"):
        frames.read_frames(tmp_path)
    with pytest.raises(Gauss2dError, match="max_frames=0"):
        frames.read_frames(tmp_path, max_frames=0)


av = pytest.importorskip("av", reason="PyAV (the video extra) is not installed")


@pytest.mark.parametrize(
    "codec, pix_fmt, options, max_error, mean_error",
    [
        # Lossless x264 in 4:4:4: only the RGB <-> YCbCr rounding remains (<= 2 levels).
        ("libx264", "yuv444p", {"qp": "0"}, 2.5 / 255, 0.005),
        # Lossy 4:2:0 at 48x32: the striped disc's colour edges lose their chroma (measured: mean
        # 0.023 from 4:2:0 alone, losslessly; 0.029 at crf 18), hence a loose mean bound.
        ("libx264", "yuv420p", {"crf": "18"}, 1.0, 0.04),
    ],
)
def test_video_round_trip_through_pyav(tmp_path, clip, codec, pix_fmt, options, max_error, mean_error):
    path = tmp_path / "clip.mp4"
    frames.write_video(path, clip, codec=codec, pix_fmt=pix_fmt, options=options)
    back = frames.read_frames(path)
    assert back.shape == clip.shape and back.dtype == np.float32
    error = np.abs(back - clip)
    assert error.max() <= max_error and error.mean() < mean_error
    assert frames.read_video(path, max_frames=3).shape[0] == 3


def test_video_errors(tmp_path, clip):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(ImageError, match="cannot decode video"):
        frames.read_frames(broken)
    with pytest.raises(ImageError, match="memory_limit_gb"):
        path = tmp_path / "ok.mp4"
        frames.write_video(path, clip)
        frames.read_video(path, memory_limit_gb=1e-6)
    with pytest.raises(Gauss2dError, match="even sizes"):
        frames.write_video(tmp_path / "odd.mp4", clip[:, :31], pix_fmt="yuv420p")
    with pytest.raises(Gauss2dError, match="cannot write video"):
        frames.write_video(tmp_path / "bad.mp4", clip, codec="no-such-encoder")
    assert not (tmp_path / "bad.mp4").exists()  # nothing half-written is left


def test_missing_pyav_gives_the_install_line(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    (tmp_path / "x.mp4").write_bytes(b"0")
    with pytest.raises(Gauss2dError, match=r"pip install 'gauss2d\[video\]'"):
        frames.read_frames(tmp_path / "x.mp4")

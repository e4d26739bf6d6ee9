"""``python -m experiments.video`` end to end: encode a sequence or a folder, decode, refuse bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

from gauss2d.io import images
from gauss2d.video import decoder, frames, g2v, sequences

pytestmark = pytest.mark.slow
SMOKE = "--config=configs/video.py:smoke"


def run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "experiments.video", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    out, results = folder / "pan.g2v", folder / "pan.json"
    proc = run("encode", "pan", str(out), SMOKE, f"--results={results}")
    assert proc.returncode == 0, proc.stderr
    return folder, out, json.loads(results.read_text()), proc.stdout


def test_encode_writes_a_g2v_file_with_one_progress_line_per_frame(encoded):
    _, out, results, stdout = encoded
    data = out.read_bytes()
    layout = g2v.split(data)
    assert (layout.header.num_frames, layout.header.height, layout.header.width) == (4, 32, 48)
    lines = [line for line in stdout.splitlines() if line.startswith("frame ")]
    assert [line.split()[:3] for line in lines] == [["frame", "0", "I"], ["frame", "1", "P"],
                                                    ["frame", "2", "I"], ["frame", "3", "P"]]  # fmt: skip
    assert all(" bytes " in line and " dB " in line and line.endswith(" s") for line in lines)
    records = results["frames"]
    assert [r["type"] for r in records] == ["I", "P", "I", "P"]
    assert {"index", "type", "bytes", "psnr", "encode_seconds"} <= set(records[0])
    assert results["totals"]["bytes"] == len(data)
    assert results["mean_bpp"] == pytest.approx(8 * len(data) / (4 * 32 * 48))
    assert [int(line.split()[3]) for line in lines] == [r["bytes"] for r in records]


def test_decode_writes_the_decoders_frames_and_a_video(encoded):
    folder, out, results, _ = encoded
    frames_dir, video = folder / "frames", folder / "pan.mp4"
    proc = run("decode", str(out), str(frames_dir), f"--video={video}")
    assert proc.returncode == 0, proc.stderr
    _, want = decoder.decode_video(out.read_bytes())
    target = sequences.named("pan", 4, 32, 48)
    for k in range(4):
        png = images.load_image(frames_dir / f"frame_{k:05d}.png")
        np.testing.assert_array_equal(png, np.round(want[k] * 255) / 255)  # the 8-bit render
        psnr = 10 * np.log10(1 / np.mean((want[k].astype(np.float64) - target[k]) ** 2))
        assert psnr == pytest.approx(results["frames"][k]["psnr"], abs=1e-3)
    assert frames.read_frames(video).shape == (4, 32, 48, 3)
    again = run("decode", str(out), str(frames_dir))
    assert_one_line_error(again, "--overwrite")


def test_a_folder_of_frames_is_an_input(tmp_path):
    frames.write_frames(tmp_path / "in", sequences.named("object", 3, 32, 48))
    out = tmp_path / "f.g2v"
    proc = run("encode", str(tmp_path / "in"), str(out), SMOKE, "--config.video.frames=2")
    assert proc.returncode == 0, proc.stderr
    assert g2v.split(out.read_bytes()).header.num_frames == 2


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["encode", "nothere", "x.g2v"], ["'nothere' does not exist", "pan"]),
        (["encode", "pan", "x.g2v", "--config.video.gop=0"], ["video.gop=0"]),
        (["encode", "pan", "x.g2v", "--config.video.bogus=1"], ["bogus"]),
    ],
)
def test_bad_input_is_one_error_line(args, fragments, tmp_path):
    args = [a.replace("x.g2v", str(tmp_path / "x.g2v")) for a in args]
    assert_one_line_error(run(*args, SMOKE), *fragments)
    assert not (tmp_path / "x.g2v").exists()


def test_a_damaged_file_is_one_error_line(encoded, tmp_path):
    _, out, _, _ = encoded
    data = bytearray(out.read_bytes())
    data[-10] ^= 0x40
    bad = tmp_path / "bad.g2v"
    bad.write_bytes(bytes(data))
    assert_one_line_error(run("decode", str(bad), str(tmp_path / "o")), "CRC mismatch")
    bad.write_bytes(b"G2D\x00\x02junk")
    assert_one_line_error(run("decode", str(bad), str(tmp_path / "o")), "not a gauss2d file")

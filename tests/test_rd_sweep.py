"""The rate-distortion study end to end on two tiny images: files, bpp from bytes, resume, refusals."""

from __future__ import annotations

import csv
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

from configs import rd_kodak
from gauss2d import settings
from gauss2d.errors import Gauss2dError
from gauss2d.io import images as data
from gauss2d.rd import sweep

pytestmark = pytest.mark.slow

H, W = 48, 64  # two crops of the sample: small enough for seconds, large enough for a codec


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("images")
    sample = data.load_image(data.sample_image_path())
    data.save_image(folder / "left.png", sample[100 : 100 + H, 40 : 40 + W])
    data.save_image(folder / "right.png", sample[60 : 60 + H, 250 : 250 + W])
    return folder


def tiny_config(image_dir: pathlib.Path, **changes):
    """The smoke study's settings on two crops, with ``section__key=value`` changes."""
    config = rd_kodak.get_config("smoke")
    with config.unlocked():
        config.data.dir = str(image_dir)
        config.data.downscale = 1
        config.batch_size = 2
        config.optim.iterations = 20
        config.log_every = 10
        config.fps_repeats = 1
        config.codec.qat_steps = 10
        # The step search is tested where it is built (test_rdo, test_position_refine); here
        # its trial encodes took 22 of this study's 220 s (profiled) and nothing here checks them.
        config.codec.step_search = False
        config.rd.num_points = (30, 90)
        config.rd.baselines = "jpeg,webp"
        for dotted, value in changes.items():
            section, key = dotted.split("__")
            config[section][key] = value
    return settings.resolve(config)


@pytest.fixture(scope="module")
def study(image_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rd")
    messages = []
    summary = sweep.run_sweep(tiny_config(image_dir), workdir, log=messages.append)
    return workdir, summary, messages


def test_rows_cover_every_image_method_and_point_with_bpp_from_the_bytes(study):
    workdir, _, _ = study
    rows = list(csv.DictReader((workdir / "rd.csv").open()))
    assert {"image", "method", "bpp", "psnr", "ms_ssim"} <= set(rows[0])
    methods = {r["method"] for r in rows}
    assert methods == {"gauss2d", "gaussianimage_mode", "jpeg", "webp"}
    for method in ("gauss2d", "gaussianimage_mode"):
        got = {(r["image"], r["point"]) for r in rows if r["method"] == method}
        assert got == {(i, p) for i in ("left", "right") for p in ("30", "90")}
    for r in rows:
        assert float(r["bpp"]) == pytest.approx(8 * int(r["bytes"]) / (H * W), rel=1e-12)
        assert 5.0 < float(r["psnr"]) < 60.0
        assert r["ms_ssim"] == ""  # 48x64 is below MS-SSIM's minimum size
    # gauss2d's bytes are the file on disk.
    for r in rows:
        if r["method"] == "gauss2d":
            path = workdir / "gauss2d" / f"n{r['point']}" / r["image"] / f"{r['image']}.g2d"
            assert path.stat().st_size == int(r["bytes"])


def test_summary_has_mean_curves_bd_rates_and_plots(study):
    workdir, summary, _ = study
    stored = json.loads((workdir / "rd_summary.json").read_text())
    assert stored["curves"]["gauss2d"]["point"] == [30, 90]
    assert stored["images"] == ["left", "right"]
    # More Gaussians: more bytes and a better fit.
    g = stored["curves"]["gauss2d"]
    assert g["bpp"][1] > g["bpp"][0] and g["psnr"][1] > g["psnr"][0]
    rows = [r for r in csv.DictReader((workdir / "rd.csv").open()) if r["method"] == "gauss2d"]
    assert g["bpp"][0] == pytest.approx(np.mean([float(r["bpp"]) for r in rows if r["point"] == "30"]))
    jpeg = stored["bd"]["psnr"]["jpeg"]
    assert set(jpeg) in ({"bd_rate", "bd_quality"}, {"error"})  # a tiny fit may not overlap JPEG
    assert "published:gaussianimage" in stored["bd"]["psnr"]
    for name in ("rd_psnr.png", "rd_msssim.png"):
        assert (workdir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["bd"] == stored["bd"]
    # Neither crop is a tuning image: both are held out, and the table says so.
    assert set(stored["bd_groups"]) == {"held_out"}
    assert stored["bd_groups"]["held_out"]["images"] == ["left", "right"]
    assert set(stored["bd_groups"]["held_out"]["per_image"]["psnr"]) == {"gaussianimage_mode", "jpeg", "webp"}
    assert "held_out (2: left, right)" in sweep.format_bd(stored)


def test_rerun_resumes_without_refitting(study, image_dir, capsys):
    workdir, summary, _ = study
    fitted = workdir / "gauss2d" / "n30" / "fit" / "left" / "params.npz"
    before = fitted.stat().st_mtime_ns
    messages = []
    again = sweep.run_sweep(tiny_config(image_dir), workdir, log=messages.append)
    out = capsys.readouterr().out
    assert fitted.stat().st_mtime_ns == before
    assert "already done" in out
    assert not any("baselines:" in m for m in messages)  # cached per image
    assert again["curves"] == summary["curves"]


def test_rerun_with_other_settings_is_refused(study, image_dir):
    workdir, _, _ = study
    with pytest.raises(Gauss2dError, match="other settings.*optim"):
        sweep.run_sweep(tiny_config(image_dir, optim__iterations=25), workdir, log=lambda m: None)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"rd__chol_bits": (5,)}, "rd.chol_bits has 1 values for 2"),
        ({"rd__num_points": (0, 10)}, "rd.num_points"),
        ({"rd__baselines": "jpeg,bpg"}, "bpg"),
        ({"rd__published": "gaussianimage,jpegxl"}, "jpegxl"),  # vtm is a known curve now (issue 14)
    ],
)
def test_bad_rd_settings_fail_before_any_work(image_dir, tmp_path, changes, match):
    with pytest.raises(Gauss2dError, match=match):
        sweep.run_sweep(tiny_config(image_dir, **changes), tmp_path / "rd", log=lambda m: None)
    assert not (tmp_path / "rd" / "gauss2d").exists()


def test_cli_reports_a_bad_setting_in_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.rd_sweep",
            "--config=configs/rd_kodak.py:smoke",
            f"--workdir={tmp_path / 'rd'}",
            "--config.rd.chol_bits=(5,)",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "rd.chol_bits" in last

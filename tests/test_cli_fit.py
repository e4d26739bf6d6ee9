"""``python -m experiments.fit`` end to end: outputs, resume, clear errors, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from gauss2d.io import checkpoint
from gauss2d.io import images as data

pytestmark = pytest.mark.slow

SMALL = ["--config=configs/default.py:smoke", "--config.optim.iterations=40", "--config.model.num_points=150"]


def run_fit(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "experiments.fit", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Two small images not in the repository: a PNG crop and a grayscale JPEG."""
    folder = tmp_path_factory.mktemp("images")
    sample = data.load_image(data.sample_image_path())
    Image.fromarray((sample[40:88, 100:172] * 255).astype(np.uint8)).save(folder / "a_crop.png")
    grey = (sample[100:140, 10:66].mean(-1) * 255).astype(np.uint8)
    Image.fromarray(grey, mode="L").save(folder / "b_grey.jpg", quality=95)
    return folder


def test_fits_a_folder_writes_results_and_skips_finished_images_on_rerun(image_dir, tmp_path):
    workdir = tmp_path / "run"
    proc = run_fit(*SMALL, f"--config.data.dir={image_dir}", f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "psnr" in proc.stdout and "steps/s" in proc.stdout and "ETA" in proc.stdout
    results = json.loads((workdir / "results.json").read_text())
    assert [r["name"] for r in results["images"]] == ["a_crop", "b_grey"]
    row = results["images"][0]
    for key in (
        "name",
        "height",
        "width",
        "num_gaussians",
        "iterations",
        "psnr",
        "ms_ssim",
        "fit_seconds",
        "render_fps",
    ):
        assert key in row
    assert (row["height"], row["width"], row["num_gaussians"], row["iterations"]) == (48, 72, 150, 40)
    assert row["ms_ssim"] is None  # 48 px is below MS-SSIM's 5-scale minimum
    assert row["psnr"] > 15 and row["render_fps"] > 0
    assert {"mean", "device", "jax_version", "git_commit"} <= set(results)
    render = data.load_image(workdir / "a_crop" / "render.png")
    assert render.shape == (48, 72, 3)
    params = checkpoint.load_params_npz(workdir / "a_crop" / "params.npz")
    assert params.xy.shape == (150, 2)

    again = run_fit(*SMALL, f"--config.data.dir={image_dir}", f"--workdir={workdir}")
    assert again.returncode == 0 and again.stdout.count("already done") == 2


def test_a_rerun_with_more_iterations_resumes_from_the_checkpoint(image_dir, tmp_path):
    workdir = tmp_path / "run"
    args = [*SMALL, f"--config.data.dir={image_dir}", "--config.data.limit=1", f"--workdir={workdir}"]
    assert run_fit(*args).returncode == 0
    (workdir / "a_crop" / "result.json").unlink()  # as if the run had stopped after its last checkpoint
    proc = run_fit(*args[:-1], "--config.optim.iterations=60", f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming from step 40" in proc.stdout
    assert json.loads((workdir / "a_crop" / "result.json").read_text())["iterations"] == 60
    (workdir / "a_crop" / "result.json").unlink()
    changed = run_fit(*args[:-1], "--config.model.num_points=99", f"--workdir={workdir}")
    assert changed.returncode != 0 and "different model" in changed.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--config.data.dir=/no/such/folder"], "/no/such/folder"),
        (["--config.model.num_points=0"], "model.num_points=0"),
        (["--config.optim.iterations=0"], "optim.iterations=0"),
        (["--config.model.no_such_key=3"], "no_such_key"),
    ],
)
def test_user_mistakes_give_one_clear_line_and_no_traceback(args, message, tmp_path):
    proc = run_fit("--config=configs/default.py:smoke", *args, f"--workdir={tmp_path}")
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_broken_image_is_reported_and_the_others_are_fitted(image_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "good.png").write_bytes((image_dir / "a_crop.png").read_bytes())
    (folder / "broken.png").write_bytes(b"not a png at all")
    proc = run_fit(*SMALL, f"--config.data.dir={folder}", f"--workdir={tmp_path / 'run'}")
    assert proc.returncode != 0 and "broken.png" in proc.stderr and "Traceback" not in proc.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["name"] for r in results["images"]] == ["good"]


def test_ctrl_c_keeps_the_last_checkpoint_and_the_next_run_resumes(image_dir, tmp_path):
    workdir = tmp_path / "run"
    args = [
        "--config=configs/default.py:smoke",
        f"--config.data.dir={image_dir}",
        "--config.data.limit=1",
        "--config.optim.iterations=100000",
        "--config.checkpoint_every=20",
        f"--workdir={workdir}",
    ]
    # A test run started in the background by a non-interactive shell inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler:
    # the child restores it before running the binary, so the signal arrives
    # as a user's would. (Not preexec_fn: forking a multithreaded JAX process
    # and running Python before exec can deadlock.)
    restore_sigint_then_run = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('experiments.fit', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", restore_sigint_then_run, *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    ckpt = workdir / "a_crop" / "checkpoint.npz"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)  # it stops after its current chunk
    assert proc.returncode == 130, err[-2000:]
    assert "rerun the same command to resume" in err and "Traceback" not in err
    resumed = run_fit(*args[:-3], "--config.optim.iterations=60", f"--workdir={workdir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from step" in resumed.stdout

"""Encode time and file size of each ``experiments.codec --preset`` on the built-in sample.

    python -m benchmarks.codec_presets --workdir=runs/codec_presets [--json=runs/codec_presets.json]

The presets change only what happens after the fit (``experiments/codec.py``,
``PRESET_STEPS``), so the sample is fitted once with ``configs/codec.py``'s
recipe (``experiments.fit``, 2000 Gaussians, 1000 steps; its time is
reported as ``fit_seconds``) and each preset then encodes those Gaussians
through the command line a user runs (``experiments.codec encode ...
--params=... --preset=P``): fine-tuning, step search, encode and the
decoded file's measurements. Each preset's time is the wall time of that
command (process start, JAX import and compilation included); the summary's
own ``qat_seconds`` / ``encode_seconds`` are reported beside it. A user who
encodes from the image pays ``fit_seconds`` on top.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time

from absl import app, flags

from gauss2d.io import images as data
from gauss2d.io import runrecord

_WORKDIR = flags.DEFINE_string("workdir", "runs/codec_presets", "Where the fit and the files go.")
_JSON = flags.DEFINE_string("json", None, "Write the table here too.")
_PRESETS = flags.DEFINE_list("presets", ["fast", "default", "best"], "Presets to measure.")

CONFIG = "configs/codec.py"


def _run(*args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main(argv):
    del argv
    workdir = pathlib.Path(_WORKDIR.value)
    sample = data.sample_image_path()
    fit_dir = workdir / "fit"
    params = fit_dir / pathlib.Path(sample).stem / "params.npz"
    fit_seconds = None
    if not params.exists():
        fit_seconds = _run("experiments.fit", f"--config={CONFIG}", f"--workdir={fit_dir}")
    fit_row = json.loads((fit_dir / "results.json").read_text())
    rows = {}
    for preset in _PRESETS.value:
        out, summary = workdir / f"{preset}.g2d", workdir / f"{preset}.json"
        seconds = _run(
            "experiments.codec",
            "encode",
            str(sample),
            str(out),
            f"--config={CONFIG}",
            f"--params={params}",
            f"--preset={preset}",
            f"--results={summary}",
            "--overwrite",
        )
        s = json.loads(summary.read_text())
        rows[preset] = {
            "command_seconds": seconds,
            "qat_steps": s.get("qat_steps"),
            "qat_seconds": s.get("qat_seconds"),
            "encode_seconds": s.get("encode_seconds"),
            "bytes": s["bytes"],
            "bpp": s["bpp"],
            "psnr": s["psnr"],
            "num_gaussians": s["num_gaussians"],
        }
        print(preset, json.dumps(rows[preset]), flush=True)
    result = {
        "sample": str(sample),
        "fit_seconds": fit_seconds,
        "fit_psnr": fit_row.get("mean", {}).get("psnr"),
        "presets": rows,
        "git_commit": runrecord.git_commit(),
        "device": runrecord.device_description(),
    }
    print(json.dumps(result), flush=True)
    if _JSON.value:
        runrecord.write_json(pathlib.Path(_JSON.value), result)


if __name__ == "__main__":
    app.run(main)

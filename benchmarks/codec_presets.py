"""Seconds and RD point of each ``experiments.codec encode --preset`` on 768x512 Kodak images.

    python -m benchmarks.codec_presets --images=kodim01,kodim02,kodim03,kodim04 \
        --json=runs/codec_presets.json [--presets=fast,default,best] [--version=2]

Each row is the command a user runs on a full-size Kodak image (768x512),
``python -m experiments.codec encode kodimNN.png out.g2d --preset=P``, timed
as a whole (Python start-up, the JAX import, compiles, the fit, fine-tuning,
the step search, the encode and the decoded-file check), with the summary's
own fit / fine-tuning / encode seconds beside it. The first command of a
machine also fills the JAX compile cache; ``--cold`` points the cache at an
empty folder for every command, to time a first run. Issue 23's budgets on
the 2-core CPU: ``fast`` <= 20 s, ``default`` <= 120 s.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from gauss2d.io import runrecord

_IMAGES = flags.DEFINE_list("images", ["kodim01", "kodim02", "kodim03", "kodim04"], "Kodak images.")
_DATA = flags.DEFINE_string("data", "../shared/data/kodak", "Folder of the Kodak PNGs.")
_PRESETS = flags.DEFINE_list("presets", ["fast", "default"], "Presets to measure.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/codec_presets", "Where the files go.")
_JSON = flags.DEFINE_string("json", None, "Write the rows here too.")
_VERSION = flags.DEFINE_integer("version", None, "--config.codec.version (None: the config's).")
_COLD = flags.DEFINE_bool("cold", False, "An empty JAX compile cache for every command.")


def _run(args: list[str]) -> float:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if _COLD.value:
            env["GAUSS2D_COMPILE_CACHE"] = cache
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    print(proc.stdout.splitlines()[0], flush=True)  # the preset's line
    return seconds


def _load() -> str:
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def main(argv):
    del argv
    workdir = pathlib.Path(_WORKDIR.value)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in _IMAGES.value:
        image = pathlib.Path(_DATA.value) / f"{name}.png"
        for preset in _PRESETS.value:
            out, summary = workdir / f"{name}_{preset}.g2d", workdir / f"{name}_{preset}.json"
            args = ["experiments.codec", "encode", str(image), str(out), f"--preset={preset}"]
            args += [f"--results={summary}", "--overwrite"]
            if _VERSION.value is not None:
                args.append(f"--config.codec.version={_VERSION.value}")
            load_before = _load()
            seconds = _run(args)
            s = json.loads(summary.read_text())
            row = {
                "image": name,
                "preset": preset,
                "command_seconds": seconds,
                "fit_seconds": s.get("fit_seconds"),
                "qat_seconds": s.get("qat_seconds"),
                "encode_seconds": s.get("encode_seconds"),
                "bytes": s["bytes"],
                "bpp": s["bpp"],
                "psnr": s["psnr"],
                "num_gaussians": s["num_gaussians"],
                "load_before": load_before,
                "load_after": _load(),
            }
            rows.append(row)
            parts = [name, preset, f"{seconds:.1f}"]
            parts += [f"{row[k] or 0:.1f}" for k in ("fit_seconds", "qat_seconds", "encode_seconds")]
            parts += [str(row["bytes"]), f"{row['bpp']:.4f}", f"{row['psnr']:.2f}", str(row["num_gaussians"])]
            print("| " + " | ".join([*parts, load_before]) + " |", flush=True)
    result = {"rows": rows, "git_commit": runrecord.git_commit(), "device": runrecord.device_description()}
    if _JSON.value:
        runrecord.write_json(pathlib.Path(_JSON.value), result)


if __name__ == "__main__":
    app.run(main)

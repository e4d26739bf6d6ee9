"""Where the bits and the decibels go, v1 against v2, and the v2 decode time at 768x512.

    python -m benchmarks.codec_v2 --fits=runs/rd_v2/gauss2d/n2250/fit --json=runs/codec_v2_breakdown.json

For each fitted image in ``--fits`` (experiments.fit's layout: <image>/params.npz;
the images are read from ``--data``):

* bits per Gaussian by attribute of a v1 entropy file and v2 files of the
  same Gaussians with plain quantisation (no fine-tuning): v2 with raw
  Cholesky factors and one colour step per channel (session 1's settings),
  and ``v2_log_size`` (log covariance space, colour steps by size: session
  2's defaults); header, positions, covariance, colour;
* the PSNR lost to each quantiser alone (that attribute quantised, the
  others exact) and to all together.

Then the decode time (parse, entropy decode, render) of a 768x512 v2 file:
the fits tiled 2x2 (four 384x256 fits side by side give 768x512 with their
Gaussians at their own sizes). In this process: the first decode
(compilation included) and warm (best of 5). Then ``experiments.codec
decode`` in fresh processes, with an empty and then a filled compilation
cache (``command_line_decode``). ``--decode_only`` skips the breakdown.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from configs import rd_kodak
from gauss2d import codec, compress, gaussians, metrics
from gauss2d.codec import quantize
from gauss2d.codec.v2.sections import quantize_v2
from gauss2d.io import checkpoint
from gauss2d.render import render_clamped
from gauss2d.runner import inputs
from gauss2d.settings import resolve

_FITS = flags.DEFINE_string("fits", "runs/rd_v2/gauss2d/n2250/fit", "Folder of fits (<image>/params.npz).")
_DATA = flags.DEFINE_string("data", "../shared/data/kodak", "Folder of the images the fits are of.")
_DOWNSCALE = flags.DEFINE_integer("downscale", 2, "The fits' downscale factor.")
_JSON = flags.DEFINE_string("json", None, "Write the results here.")
_DECODE_ONLY = flags.DEFINE_bool("decode_only", False, "Only the 768x512 decode times (no breakdown).")


def _psnr(params, target):
    h, w = target.shape[:2]
    return float(metrics.psnr(render_clamped(params, h, w), jnp.asarray(target)))


def _v1_order(params, h, w, step):
    means = 0.5 * (np.tanh(np.asarray(params.xy, np.float64)) + 1.0) * np.asarray([w, h], np.float64)
    cells = quantize.grid_indices(means, step, h, w)
    return np.argsort(cells[:, 1] * round(w / step) + cells[:, 0], kind="stable")


def breakdown(params, target) -> dict:
    h, w = target.shape[:2]
    n = gaussians.num_gaussians(params)
    out = {"num_gaussians": n, "fit_psnr": _psnr(params, target)}
    # v1: plain quantisation, entropy mode.
    v1 = codec.format_settings(1, mode="entropy")
    v1_state = codec.init_state(params, version=1, settings=v1)  # plain quantisation, no warning
    v1_data = codec.encode(params, h, w, version=1, state=v1_state, settings=v1)
    q1 = codec.quantize_for_encoding(params, h, w, version=1, state=v1_state, settings=v1)
    order = _v1_order(params, h, w, v1.position_step)
    # v2: plain quantisation, session 1's settings (raw Cholesky factors, one
    # colour step per channel) and session 2's (log covariance, colour by size).
    variants = [("v1", v1_data, q1, order)]
    for name, settings in (
        ("v2", codec.format_settings(2, cov_space="cholesky", color_by_size=False)),
        ("v2_log_size", codec.format_settings(2, cov_space="log", color_by_size=True)),
    ):
        state = codec.init_state(params, version=2, settings=settings)
        q2 = quantize_v2(params, h, w, state, settings)
        data_ = codec.encode(params, h, w, version=2, state=state, settings=settings)
        variants.append((name, data_, q2.params, q2.source))
    for name, data_, qp, src in variants:
        exact = gaussians.CholeskyParams(*(jnp.asarray(np.asarray(a)[src]) for a in params))
        lost = {}
        for attr in ("xy", "chol", "color"):
            lost[attr] = out["fit_psnr"] - _psnr(exact._replace(**{attr: getattr(qp, attr)}), target)
        lost["all"] = out["fit_psnr"] - _psnr(qp, target)
        bits = codec.bits_by_attribute(data_)
        out[name] = {
            "bytes": len(data_),
            "bpp": 8 * len(data_) / (h * w),
            "bits_per_gaussian": {k: v / n for k, v in bits.items()},
            "psnr_lost_db": lost,
        }
    return out


def mosaic(fits: list) -> tuple[gaussians.CholeskyParams, int, int]:
    """Four (params, h, w) fits tiled 2x2 into one set of Gaussians on a (2h, 2w) image."""
    (_, h, w) = fits[0]
    parts = []
    for k, (p, _, _) in enumerate(fits[:4]):
        means = 0.5 * (np.tanh(np.asarray(p.xy, np.float64)) + 1.0) * [w, h] + [(k % 2) * w, (k // 2) * h]
        xy = np.arctanh(np.clip(2.0 * means / [2 * w, 2 * h] - 1.0, -0.999999, 0.999999))
        parts.append((xy, np.asarray(p.chol), np.asarray(p.color)))
    cat = [np.concatenate([q[i] for q in parts]).astype(np.float32) for i in range(3)]
    return gaussians.CholeskyParams(*(jnp.asarray(a) for a in cat)), 2 * h, 2 * w


def command_line_decode(blob: bytes, folder: pathlib.Path) -> dict:
    """``experiments.codec decode`` of the file in fresh processes: its reported time and the wall time.

    First with an empty compilation cache (everything compiled), then twice
    more with the cache that run filled (the renderer loaded from disk).
    The reported time is the command's own (read, parse, entropy decode,
    render); the wall time adds Python start-up and the JAX import.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path, cache = folder / "mosaic.g2d", folder / "cache"
    path.write_bytes(blob)
    shutil.rmtree(cache, ignore_errors=True)
    out = {}
    for run in ("empty_cache", "warm_cache", "warm_cache_again"):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "experiments.codec", "decode", str(path), str(folder / "out.png")]
            + ["--overwrite", f"--compile_cache={cache}"],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        reported = re.search(r"rendered in ([0-9.]+) s", proc.stdout)
        if proc.returncode != 0 or reported is None:
            raise SystemExit(f"decode failed: {proc.stderr[-2000:]}")
        out[run] = {"reported_seconds": float(reported.group(1)), "wall_seconds": wall}
    return out


def main(argv):
    del argv
    fits_dir = pathlib.Path(_FITS.value)
    config = rd_kodak.get_config("cpu")  # its data section: the downscale the fits were made at
    with config.unlocked():
        config.data.downscale = _DOWNSCALE.value
    rows, fits = {}, []
    for d in sorted(p for p in fits_dir.iterdir() if (p / "params.npz").exists()):
        params = checkpoint.load_params_npz(d / "params.npz")
        image = np.asarray(inputs.load_target(pathlib.Path(_DATA.value) / f"{d.name}.png", resolve(config)))
        if not _DECODE_ONLY.value:
            rows[d.name] = breakdown(params, image)
            print(d.name, json.dumps(rows[d.name]), flush=True)
        fits.append((params, image.shape[0], image.shape[1]))
    big, h, w = mosaic(fits)
    session1 = codec.format_settings(2, cov_space="cholesky", color_by_size=False)
    state = codec.init_state(big, version=2, settings=session1)
    blob = codec.encode(big, h, w, version=2, state=state, settings=session1)
    cold = compress.decode_and_render(blob)[1]  # this process's first: compilation included
    times = [compress.decode_and_render(blob)[1] for _ in range(5)]
    t0 = time.perf_counter()
    codec.decode(blob)
    parse = time.perf_counter() - t0
    scratch = pathlib.Path(_JSON.value or "runs/codec_v2.json").parent / "decode_768x512"
    cli = command_line_decode(blob, scratch)
    result = {
        "images": rows,
        "decode_768x512": {
            "num_gaussians": gaussians.num_gaussians(big),
            "bytes": len(blob),
            "height": h,
            "width": w,
            "seconds_best_of_5": min(times),
            "seconds_median": float(np.median(times)),
            "seconds_first_in_process": cold,
            "parse_and_entropy_decode_seconds": parse,
            "command_line": cli,
        },
        "device": str(jax.devices()[0]),
    }
    print(json.dumps(result["decode_768x512"]), flush=True)
    if _JSON.value:
        pathlib.Path(_JSON.value).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    app.run(main)

"""Where the bits and the decibels go, v1 against v2, and the v2 decode time at 768x512.

    python -m benchmarks.codec_v2 --fits=runs/rd_v2/gauss2d/n2250/fit --json=runs/codec_v2_breakdown.json

For each fitted image in ``--fits`` (experiments.fit's layout: <image>/params.npz;
the images are read from ``--data``):

* bits per Gaussian by attribute of a v1 entropy file and a v2 file of the
  same Gaussians with plain quantisation (no fine-tuning, default settings
  of each version): header, positions, covariance, colour;
* the PSNR lost to each quantiser alone (that attribute quantised, the
  others exact) and to all together.

Then the decode time (parse, entropy decode, render; warm, best of 5) of a
768x512 v2 file: the fits tiled 2x2 (four 384x256 fits side by side give
768x512 with their Gaussians at their own sizes).
"""

from __future__ import annotations

import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from configs import rd_kodak
from gauss2d import checkpoint, compress, gaussians, metrics, runner
from gauss2d.codec import codec, codec_v2, quantize
from gauss2d.render.params import render_params

_FITS = flags.DEFINE_string("fits", "runs/rd_v2/gauss2d/n2250/fit", "Folder of fits (<image>/params.npz).")
_DATA = flags.DEFINE_string("data", "../shared/data/kodak", "Folder of the images the fits are of.")
_DOWNSCALE = flags.DEFINE_integer("downscale", 2, "The fits' downscale factor.")
_JSON = flags.DEFINE_string("json", None, "Write the results here.")


def _psnr(params, target):
    h, w = target.shape[:2]
    return float(metrics.psnr(render_params(params, h, w), jnp.asarray(target)))


def _v1_order(params, h, w, step):
    means = 0.5 * (np.tanh(np.asarray(params.xy, np.float64)) + 1.0) * np.asarray([w, h], np.float64)
    cells = quantize.grid_indices(means, step, h, w)
    return np.argsort(cells[:, 1] * round(w / step) + cells[:, 0], kind="stable")


def breakdown(params, target) -> dict:
    h, w = target.shape[:2]
    n = gaussians.num_gaussians(params)
    out = {"num_gaussians": n, "fit_psnr": _psnr(params, target)}
    # v1: plain quantisation, entropy mode.
    v1_state = codec.init_codec_state(params)  # plain quantisation on purpose: no fine-tuning warning
    v1_data = codec.encode(params, h, w, state=v1_state)
    q1 = codec.quantize_for_encoding(params, h, w, state=v1_state)
    order = _v1_order(params, h, w, codec.CodecSettings().position_step)
    # v2: plain quantisation, default settings.
    settings = codec_v2.V2Settings()
    state = codec_v2.init_v2_state(params, settings)
    v2_data = codec_v2.encode_v2(params, h, w, state, settings)
    q2 = codec_v2.quantize_v2(params, h, w, state, settings)
    for name, data_, qp, src in (("v1", v1_data, q1, order), ("v2", v2_data, q2.params, q2.source)):
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


def main(argv):
    del argv
    fits_dir = pathlib.Path(_FITS.value)
    config = rd_kodak.get_config("cpu")  # its data section: the downscale the fits were made at
    with config.unlocked():
        config.data.downscale = _DOWNSCALE.value
    rows, fits = {}, []
    for d in sorted(p for p in fits_dir.iterdir() if (p / "params.npz").exists()):
        params = checkpoint.load_params_npz(d / "params.npz")
        image = np.asarray(runner.load_target(pathlib.Path(_DATA.value) / f"{d.name}.png", config))
        rows[d.name] = breakdown(params, image)
        fits.append((params, image.shape[0], image.shape[1]))
        print(d.name, json.dumps(rows[d.name]), flush=True)
    big, h, w = mosaic(fits)
    blob = codec_v2.encode_v2(big, h, w, codec_v2.init_v2_state(big))
    compress.decode_and_render(blob)  # compile
    times = [compress.decode_and_render(blob)[1] for _ in range(5)]
    t0 = time.perf_counter()
    codec.decode(blob)
    parse = time.perf_counter() - t0
    result = {
        "images": rows,
        "decode_768x512": {
            "num_gaussians": gaussians.num_gaussians(big),
            "bytes": len(blob),
            "height": h,
            "width": w,
            "seconds_best_of_5": min(times),
            "seconds_median": float(np.median(times)),
            "parse_and_entropy_decode_seconds": parse,
        },
        "device": str(jax.devices()[0]),
    }
    print(json.dumps(result["decode_768x512"]), flush=True)
    if _JSON.value:
        pathlib.Path(_JSON.value).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    app.run(main)

"""Which v2 quantisers pay, measured on fitted Gaussians (issue 14, session 2).

    python -m benchmarks.codec_v2_quantisers --study=cov --fits=FITS --images=kodim01,kodim03
    python -m benchmarks.codec_v2_quantisers --study=color --fits=FITS --images=kodim01,kodim03
    python -m benchmarks.codec_v2_quantisers --study=search --fits=FITS --lmbda=0.0006 --variants=base,logsp

with FITS an experiments.fit work directory, e.g. the RD study's
runs/rdcpu/gauss2d/n2250/fit (configs/rd_kodak.py:cpu, 2250 Gaussians).

* ``cov``: only the covariance quantised, in the raw Cholesky space, the
  log space (``log l11, l21, log l22``) and the log space with a relative
  shear (``log l11, l21 / l22, log l22``: ``codec.cov_space=log``), each at
  steps of 0.03 ... 0.48 standard deviations of its channel: bits per
  Gaussian of the three streams as the v2 coder writes them, and the dB lost
  against the unquantised fit.
* ``color``: only the colours quantised (YCbCr), with one step per channel
  (alpha 0) or steps scaled by 2^(-alpha * 2 * octaves of the area) (alpha
  0.5: ``codec.color_by_size``), at base steps 1/128 ... 1/16.
* ``search``: whole v2 files after the RD step search at ``--lmbda`` with
  each variant's settings (``VARIANTS``): bpp, decoded PSNR and the
  objective MSE + lambda bpp, per image and mean.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax.numpy as jnp
import numpy as np
from absl import app, flags

from configs import rd_kodak
from gauss2d import codec, metrics
from gauss2d.codec import streams
from gauss2d.codec.v2.state import from_space, init_state, to_space
from gauss2d.compress import targets
from gauss2d.io import checkpoint
from gauss2d.render import render_clamped
from gauss2d.runner import inputs
from gauss2d.settings import resolve

_STUDY = flags.DEFINE_enum("study", "search", ["cov", "color", "search"], "What to measure.")
_FITS = flags.DEFINE_string("fits", "runs/rdcpu/gauss2d/n2250/fit", "Folder of fits (<image>/params.npz).")
_DATA = flags.DEFINE_string("data", "../shared/data/kodak", "Folder of the images the fits are of.")
_IMAGES = flags.DEFINE_list("images", [], "Only these images (default: every fit).")
_LMBDA = flags.DEFINE_float("lmbda", 0.0006, "search: the rate weight (MSE per bpp).")
_VARIANTS = flags.DEFINE_list("variants", ["base", "log", "logs", "logsp"], "search: variants.")
_JSON = flags.DEFINE_string("json", None, "Write the rows here.")

OFFSET = np.asarray([0.5, 0.0, 0.5])
# search variants: (V2Settings overrides, rd_search options).
VARIANTS = {
    "base": ({}, {"groups": ("color", "chol")}),  # session 1
    "lc": ({}, {"groups": ("color_luma", "color_chroma", "chol")}),
    "lcd": ({}, {"groups": ("color_luma", "color_chroma", "chol_diag", "chol_off")}),
    "log": ({"cov_space": "log"}, {"groups": ("color", "chol")}),
    "logs": ({"cov_space": "log", "color_by_size": True}, {"groups": ("color", "chol")}),
    "logsp": (  # session 2's defaults
        {"cov_space": "log", "color_by_size": True},
        {"groups": ("color", "chol"), "position_steps": (0.0625, 0.25)},
    ),
}


def _bits(q: np.ndarray) -> int:
    return sum(8 * len(streams.encode_stream(q[:, c])) for c in range(q.shape[1]))


def _cov_space(chol: np.ndarray, kind: str) -> np.ndarray:
    lower = chol.astype(np.float64) + OFFSET
    sign = np.where(lower[:, 0] < 0, -1.0, 1.0)
    l11 = np.maximum(np.abs(lower[:, 0]), 1e-6)
    l21 = lower[:, 1] * sign
    l22 = np.maximum(np.abs(lower[:, 2]), 1e-6)
    if kind == "raw":
        return chol.astype(np.float64)
    shear = l21 if kind == "log" else l21 / l22
    return np.stack([np.log(l11), shear, np.log(l22)], -1)


def _from_cov_space(u: np.ndarray, kind: str) -> np.ndarray:
    if kind == "raw":
        return u
    l11, l22 = np.exp(u[:, 0]), np.exp(u[:, 2])
    l21 = u[:, 1] if kind == "log" else u[:, 1] * l22
    return np.stack([l11, l21, l22], -1) - OFFSET


def cov_rows(name, params, image) -> list[dict]:
    h, w = image.shape[:2]
    n = params.xy.shape[0]
    fit = float(metrics.psnr(render_clamped(params, h, w), image))
    chol = np.asarray(params.chol)
    rows = []
    for kind in ("raw", "log", "logrel"):
        u = _cov_space(chol, kind)
        sd, med = u.std(0), np.median(u, 0)
        for rel in (0.03, 0.06, 0.12, 0.24, 0.48):
            q = np.round((u - med) / (sd * rel)).astype(np.int64)
            back = _from_cov_space(q * sd * rel + med, kind).astype(np.float32)
            lost = fit - float(
                metrics.psnr(render_clamped(params._replace(chol=jnp.asarray(back)), h, w), image)
            )
            rows.append(
                {
                    "image": name,
                    "space": kind,
                    "step_sd": rel,
                    "bits_per_gaussian": _bits(q) / n,
                    "db_lost": lost,
                }
            )
    return rows


def color_rows(name, params, image) -> list[dict]:
    h, w = image.shape[:2]
    n = params.xy.shape[0]
    fit = float(metrics.psnr(render_clamped(params, h, w), image))
    lower = np.asarray(params.chol, np.float64) + OFFSET
    area = np.abs(lower[:, 0] * lower[:, 2])
    ycc = to_space(np.asarray(params.color, np.float64), "ycbcr")
    med = np.median(ycc, 0)
    rows = []
    for alpha in (0.0, 0.25, 0.5):
        factor = 2.0 ** (-np.round(np.log2(area / np.median(area)) * 2 * alpha) / 2)
        for base in (1 / 128, 1 / 64, 1 / 32, 1 / 16):
            step = base * factor[:, None]
            q = np.round((ycc - med) / step).astype(np.int64)
            color = from_space(q * step + med, "ycbcr").astype(np.float32)
            lost = fit - float(
                metrics.psnr(render_clamped(params._replace(color=jnp.asarray(color)), h, w), image)
            )
            rows.append(
                {
                    "image": name,
                    "alpha": alpha,
                    "base_step": base,
                    "bits_per_gaussian": _bits(q) / n,
                    "db_lost": lost,
                }
            )
    return rows


def search_rows(name, params, image) -> list[dict]:
    h, w = image.shape[:2]
    rows = []
    for variant in _VARIANTS.value:
        overrides, options = VARIANTS[variant]
        # Session 1's v2 settings (raw Cholesky factors, one colour step), then the variant's.
        plain = codec.format_settings(2, cov_space="cholesky", color_by_size=False)
        settings = dataclasses.replace(plain, **overrides)
        state = init_state(params, settings)
        t0 = time.perf_counter()
        best, info = targets.rd_search(
            params,
            h,
            w,
            state,
            settings,
            _LMBDA.value,
            image,
            lambda p, hh, ww: render_clamped(p, hh, ww),
            **options,
        )
        at_grid = dataclasses.replace(settings, position_step=info["position_step"])
        data = codec.encode(params, h, w, version=2, state=best, settings=at_grid)
        decoded = codec.decode(data).params
        psnr = float(metrics.psnr(render_clamped(decoded, h, w), image))
        rows.append(
            {
                "image": name,
                "variant": variant,
                "bpp": 8 * len(data) / (h * w),
                "psnr": psnr,
                "objective": info["objective"],
                "seconds": time.perf_counter() - t0,
                "search": {k: v for k, v in info.items() if k != "objective"},
            }
        )
    return rows


def main(argv):
    del argv
    config = rd_kodak.get_config("cpu")  # its data section: the downscale the fits were made at
    study = {"cov": cov_rows, "color": color_rows, "search": search_rows}[_STUDY.value]
    rows = []
    for d in sorted(p for p in pathlib.Path(_FITS.value).iterdir() if (p / "params.npz").exists()):
        if _IMAGES.value and d.name not in _IMAGES.value:
            continue
        params = checkpoint.load_params_npz(d / "params.npz")
        image = jnp.asarray(inputs.load_target(pathlib.Path(_DATA.value) / f"{d.name}.png", resolve(config)))
        for row in study(d.name, params, image):
            print(json.dumps(row), flush=True)
            rows.append(row)
    if _STUDY.value == "search":
        for variant in _VARIANTS.value:
            mine = [r for r in rows if r["variant"] == variant]
            means = {k: float(np.mean([r[k] for r in mine])) for k in ("bpp", "psnr", "objective", "seconds")}
            print(f"mean {variant}: " + ", ".join(f"{k} {v:.6g}" for k, v in means.items()), flush=True)
    if _JSON.value:
        pathlib.Path(_JSON.value).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    app.run(main)

"""Regrowth in the rate-aware fine-tuning (``codec.grow_fraction``) against pruning alone, on real v3 files.

    python -m benchmarks.regrow --images=kodim01,kodim03 --grow=0.1 --json=/tmp/regrow.json

Each image (Kodak at 384x256) is fitted once per operating point of
``configs/rd_kodak.py:cpu`` (its recipe: N and lambda per point, 2000 fit
steps; fits cached in ``--fits``), then compressed twice from the same fit
with the study's settings: ``grow_fraction`` 0 (prune only: N can only fall)
and ``--grow`` (pruned slots regrow where the error is largest, with that
share of headroom: N is chosen by the rate). Bytes are the real files',
PSNR the decoded render's; BD-rate of the regrowing curve against the
pruning one per image. ``--qat_lr`` sets both arms' fine-tuning learning rate
(a Gaussian born in the fine-tuning has to converge at it).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
import numpy as np
from absl import app, flags

from benchmarks.cpu_images import cpu_images
from configs import rd_kodak
from gauss2d import compress
from gauss2d.io import checkpoint
from gauss2d.rd import sweep
from gauss2d.rd.bjontegaard import bd_rate
from gauss2d.settings import resolve
from gauss2d.train import densify

_IMAGES = flags.DEFINE_list("images", ["kodim01", "kodim03"], "Kodak images (settings are chosen on 01-04).")
_GROW = flags.DEFINE_float("grow", 0.1, "grow_fraction of the regrowing arm.")
_QAT_LR = flags.DEFINE_float("qat_lr", None, "Fine-tuning learning rate of both arms (default: the study's).")
_FITS = flags.DEFINE_string("fits", "/tmp/regrow_fits", "Cache of fits.")
_JSON = flags.DEFINE_string("json", None, "Write the rows here.")


def _fit(name: str, point, target):
    fit = f"{name}_n{point.model.num_points}_s{point.optim.iterations}"
    path = pathlib.Path(_FITS.value) / fit / "params.npz"
    if path.exists():
        return checkpoint.load_params_npz(path)
    t0 = time.perf_counter()
    params = densify.fit_function(point)(target, point, jax.random.key(0)).params
    print(f"fit {name} N={point.model.num_points}: {time.perf_counter() - t0:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save_params_npz(path, params)
    return params


def _arm(target, point, params, grow: float) -> dict:
    run = point.replace(codec=dataclasses.replace(point.codec, grow_fraction=grow))
    t0 = time.perf_counter()
    s = compress.compress_image(target, run, jax.random.key(0), params=params).summary
    keys = ("bytes", "bpp", "psnr", "num_gaussians", "rdo_pruned_gaussians", "rdo_regrown_gaussians")
    return {**{k: s[k] for k in keys}, "seconds": time.perf_counter() - t0}


def main(argv):
    del argv
    settings = resolve(rd_kodak.get_config("cpu"))
    images = cpu_images(",".join(_IMAGES.value), quick=False)
    rows = []
    for name, target in images.items():
        curves = {"prune": [], "regrow": []}
        for n, bits, lmbda in sweep.operating_points(settings):
            point = sweep.point_settings(settings, n, bits, lmbda)
            params = _fit(name, point, target)
            if _QAT_LR.value is not None:
                point = point.replace(codec=dataclasses.replace(point.codec, qat_lr=_QAT_LR.value))
            for arm, grow in (("prune", 0.0), ("regrow", _GROW.value)):
                r = _arm(target, point, params, grow)
                curves[arm].append(r)
                print(
                    f"{name} N={n} lambda={lmbda:g} {arm:6s}: {r['bytes']:6d} B {r['bpp']:.4f} bpp "
                    f"{r['psnr']:.3f} dB, {r['num_gaussians']} Gaussians "
                    f"(pruned {r['rdo_pruned_gaussians']}, regrown {r['rdo_regrown_gaussians']}), "
                    f"{r['seconds']:.0f} s",
                    flush=True,
                )
        a, b = (np.asarray([[r["bpp"], r["psnr"]] for r in curves[k]]).T for k in ("prune", "regrow"))
        bd = bd_rate(a[0], a[1], b[0], b[1])
        rows.append({"image": name, "grow": _GROW.value, **curves, "bd_rate": bd})
        print(f"{name}: BD-rate regrow vs prune {bd:+.2f}%", flush=True)
    print(f"mean BD-rate {np.mean([r['bd_rate'] for r in rows]):+.2f}% over {len(rows)} images")
    if _JSON.value:
        pathlib.Path(_JSON.value).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    app.run(main)

"""Per-Gaussian position precision (v3 ``codec.position_refine``) against one grid, on real v3 files.

    python -m benchmarks.position_precision --images=kodim01,kodim02,kodim03,kodim04 \
        --points=750,2250 --json=/tmp/position_precision.json

Each image (Kodak at 384x256, ``configs/rd_kodak.py:cpu``'s recipe with 500
steps, cached in ``--fits``) is quantised with v3's plain float16 quantisers
(no fine-tuning, so both arms code the same covariances and colours) and
written as real v3 files while only the positions change: the finest grid
``codec.position_step`` swept over ``--steps``, with ``position_refine`` 0
(one grid for all, as v2) and K (the set on a grid 2^K coarser, each
Gaussian refined by the k octaves its decoded colour and size give). The
BD-rate of the refined curve against the one-grid curve (whole-file bytes,
PSNR of the decoded file) is what the precision saves; bits/Gaussian of the
positions at each step say where.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks.cpu_images import cpu_images
from configs import rd_kodak
from gauss2d import codec, metrics
from gauss2d.io import checkpoint
from gauss2d.rd.bjontegaard import bd_rate
from gauss2d.render import render_clamped
from gauss2d.settings import resolve
from gauss2d.train.fit import fit_image

_IMAGES = flags.DEFINE_list("images", ["kodim01", "kodim02", "kodim03", "kodim04"], "Kodak images.")
_POINTS = flags.DEFINE_list("points", ["750", "2250"], "Numbers of Gaussians.")
_STEPS = flags.DEFINE_list("steps", ["0.03125", "0.0625", "0.125", "0.25", "0.5"], "Finest grids (px).")
_REFINE = flags.DEFINE_integer("refine", 3, "position_refine K of the refined arm.")
_FIT_STEPS = flags.DEFINE_integer("fit_steps", 500, "Fit length.")
_FITS = flags.DEFINE_string("fits", "/tmp/position_precision_fits", "Cache of fits.")
_JSON = flags.DEFINE_string("json", None, "Write the rows here.")


def _fit(name: str, n: int, target):
    path = pathlib.Path(_FITS.value) / f"{name}_n{n}_s{_FIT_STEPS.value}" / "params.npz"
    if path.exists():
        return checkpoint.load_params_npz(path)
    s = resolve(rd_kodak.get_config("cpu"))
    s = dataclasses.replace(
        s,
        model=dataclasses.replace(s.model, num_points=n),
        optim=dataclasses.replace(s.optim, iterations=_FIT_STEPS.value),
    )
    t0 = time.perf_counter()
    params = fit_image(target, s, jax.random.key(0)).params
    print(f"fit {name} N={n}: {time.perf_counter() - t0:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save_params_npz(path, params)
    return params


def _state16(params):
    """v2's plain quantisers rounded to float16: every file of a row codes the same values."""
    state = codec.init_state(params, version=3, settings=codec.format_settings(3))
    half = lambda a: jnp.asarray(np.asarray(a, np.float32).astype(np.float16), jnp.float32)  # noqa: E731
    return type(state)(*(type(q)(half(q.scale), half(q.offset)) for q in state))


def curve(params, target, refine: int) -> list[dict]:
    h, w = target.shape[:2]
    state = _state16(params)
    out = []
    for step in (float(s) for s in _STEPS.value):
        s = codec.format_settings(3, position_step=step, position_refine=refine)
        data = codec.encode(params, h, w, version=3, state=state, settings=s)
        decoded = codec.decode(data).params
        psnr = float(metrics.psnr(render_clamped(decoded, h, w), jnp.asarray(target)))
        n = decoded.xy.shape[0]
        bits = codec.bits_by_attribute(data)
        out.append({"step": step, "bytes": len(data), "psnr": psnr, "position_bits": bits["positions"] / n})
    return out


DEFAULT_STEP = 0.125  # CodecSettings.position_step


def at_default(row: dict) -> tuple[float, float, float]:
    """At the default finest step: (refined / one-grid bytes, PSNR change, rate change at equal PSNR).

    The one-grid curve's bytes at the refined file's PSNR come from log-bytes
    interpolated linearly in PSNR between its steps (the sweep is monotone).
    """
    ref = next(r for r in row["refined"] if r["step"] == DEFAULT_STEP)
    one = next(r for r in row["one_grid"] if r["step"] == DEFAULT_STEP)
    curve = sorted((r["psnr"], np.log(r["bytes"])) for r in row["one_grid"])
    equal = float(np.exp(np.interp(ref["psnr"], *zip(*curve, strict=True))))
    return ref["bytes"] / one["bytes"], ref["psnr"] - one["psnr"], ref["bytes"] / equal - 1.0


def main(argv):
    del argv
    images = cpu_images(",".join(_IMAGES.value), quick=False)
    rows = []
    for name, target in images.items():
        for n in (int(p) for p in _POINTS.value):
            params = _fit(name, n, target)
            one, ref = curve(params, target, 0), curve(params, target, _REFINE.value)
            a, b = (np.asarray([[r["bytes"], r["psnr"]] for r in c]).T for c in (one, ref))
            bd = bd_rate(a[0], a[1], b[0], b[1])
            rows.append({"image": name, "n": n, "one_grid": one, "refined": ref, "bd_rate": bd})
            print(f"{name} N={n}: BD-rate refined vs one grid {bd:+.2f}%", flush=True)
            for a, b in zip(one, ref, strict=True):
                print(
                    f"  step {a['step']:<8g} one grid {a['bytes']:6d} B {a['psnr']:.3f} dB "
                    f"{a['position_bits']:.2f} b/G | refined {b['bytes']:6d} B {b['psnr']:.3f} dB "
                    f"{b['position_bits']:.2f} b/G",
                    flush=True,
                )
    bds = [r["bd_rate"] for r in rows]
    print(f"mean BD-rate {np.mean(bds):+.2f}% (median {np.median(bds):+.2f}%, {len(bds)} fits)")
    saved = [at_default(r) for r in rows]
    for r, (ratio, ddb, equal) in zip(rows, saved, strict=True):
        r["at_default"] = {"bytes_ratio": ratio, "psnr_delta": ddb, "equal_psnr_saving": equal}
        print(
            f"{r['image']} N={r['n']} at the default step {DEFAULT_STEP}: file {100 * (ratio - 1):+.1f}%, "
            f"{ddb:+.3f} dB; at equal PSNR {100 * equal:+.1f}%"
        )
    print(f"mean at equal PSNR {100 * np.mean([e for *_, e in saved]):+.1f}%")
    if _JSON.value:
        pathlib.Path(_JSON.value).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    app.run(main)

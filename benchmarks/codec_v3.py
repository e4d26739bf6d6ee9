"""Codec v3 against v2 on the same quantised Gaussians, each v3 change alone, and progressive layers.

    python -m benchmarks.codec_v3 --images=kodim01,kodim02,kodim03,kodim04 --points=200,750,1250,2250 \\
        --fits=/tmp/codec_v3_fits --json=/tmp/codec_v3.json --plot=docs/figures/codec_layers.png
    python -m benchmarks.codec_v3 --images=kodim05,kodim06,kodim07,kodim08 ... # held out, the same settings

Fits each image at ``configs/rd_kodak.py:cpu``'s scale and recipe (384x256,
500 steps) with N Gaussians (cached in ``--fits``), then quantises it once
with the plain v2 quantisers (``init_state``, steps rounded to float16 so v2
and v3 store the very same values) and writes, from those values:

* a v2 file (``CodecSettings()`` defaults) and v3 files with each change
  alone: ``v3_plain`` (compact header + one coder, no context),
  ``v3_color_ctx`` (+ colour given size), ``v3_shape_ctx`` (+ covariance
  channels 1-2 given channel 0) and ``v3`` (both); bits per Gaussian by attribute;
* at the largest N, 4-layer files in each order (scale, contribution,
  given): the PSNR of every prefix of layers against the bytes read, the
  full file's size against the one-layer file's. The one-layer curve at the
  same bytes is the image's one-layer files of the smaller N.
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

from configs import rd_kodak
from gauss2d import codec, metrics
from gauss2d.codec import container
from gauss2d.io import checkpoint
from gauss2d.render import render_clamped
from gauss2d.runner import inputs
from gauss2d.settings import resolve
from gauss2d.train.fit import fit_image

_IMAGES = flags.DEFINE_list("images", ["kodim01", "kodim02", "kodim03", "kodim04"], "Kodak images.")
_POINTS = flags.DEFINE_list("points", ["200", "750", "1250", "2250"], "Numbers of Gaussians.")
_DATA = flags.DEFINE_string("data", "/work/shared/data/kodak", "Folder of the Kodak PNGs.")
_FITS = flags.DEFINE_string("fits", "/tmp/codec_v3_fits", "Cache of fits (<image>_n<N>/params.npz).")
_JSON = flags.DEFINE_string("json", None, "Write the rows here.")
_PLOT = flags.DEFINE_string("plot", None, "Write the layers plot (PSNR against bytes read) here.")
_LAYERS = flags.DEFINE_integer("layers", 4, "Layers of the progressive files.")
_SIZES = flags.DEFINE_enum("layer_sizes", "geometric", ["geometric", "equal"], "Layer sizes (V3Settings).")

VARIANTS = {
    "v3_plain": {"color_context": False, "shape_context": False},
    "v3_color_ctx": {"color_context": True, "shape_context": False},
    "v3_shape_ctx": {"color_context": False, "shape_context": True},
    "v3": {"color_context": True, "shape_context": True},
}


def _fit(settings, target, name: str, n: int):
    path = pathlib.Path(_FITS.value) / f"{name}_n{n}" / "params.npz"
    if path.exists():
        return checkpoint.load_params_npz(path)
    s = dataclasses.replace(settings, model=dataclasses.replace(settings.model, num_points=n))
    t0 = time.perf_counter()
    params = fit_image(target, s, jax.random.key(0)).params
    print(f"fit {name} N={n}: {time.perf_counter() - t0:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save_params_npz(path, params)
    return params


def _psnr(params, target) -> float:
    h, w = target.shape[:2]
    return float(metrics.psnr(render_clamped(params, h, w), jnp.asarray(target)))


def _state16(params):
    """The plain v2 quantisers with float16-representable steps: v2 and v3 then code equal values."""
    state = codec.init_state(params, version=2, settings=codec.format_settings(2))
    half = lambda a: jnp.asarray(np.asarray(a, np.float32).astype(np.float16), jnp.float32)  # noqa: E731
    return type(state)(*(type(q)(half(q.scale), half(q.offset)) for q in state))


def _per_gaussian(data: bytes, n: int) -> dict:
    return {k: v / n for k, v in codec.bits_by_attribute(data).items()}


def sizes(name: str, n: int, params, target) -> dict:
    h, w = target.shape[:2]
    state = _state16(params)
    v2 = codec.encode(params, h, w, version=2, state=state, settings=codec.format_settings(2))
    row = {"image": name, "n": n, "psnr": _psnr(codec.decode(v2).params, target)}
    row["v2"] = {"bytes": len(v2), "bits_per_gaussian": _per_gaussian(v2, n)}
    base = codec.format_settings(3)
    for variant, changes in VARIANTS.items():
        data = codec.encode(
            params, h, w, version=3, state=state, settings=dataclasses.replace(base, **changes)
        )
        row[variant] = {"bytes": len(data), "bits_per_gaussian": _per_gaussian(data, n)}
    return row


def _record_ends(data: bytes) -> list[int]:
    """Bytes read at the end of each layer record."""
    records = container.read_records(data, container.PREAMBLE, "record", allow_truncation=False)
    return list(container.PREAMBLE + np.cumsum([len(container.pack_records([r])) for r in records]))[1:]


def layered(name: str, n: int, params, target) -> dict:
    h, w = target.shape[:2]
    state = _state16(params)
    one = codec.encode(params, h, w, version=3, state=state, settings=codec.format_settings(3))
    row = {
        "image": name,
        "n": n,
        "one_layer": {"bytes": len(one), "psnr": _psnr(codec.decode(one).params, target)},
    }
    for order in ("scale", "contribution", "given"):
        s = codec.format_settings(3, layers=_LAYERS.value)
        s = dataclasses.replace(s, layer_order=order, layer_sizes=_SIZES.value)
        data = codec.encode(params, h, w, version=3, state=state, settings=s)
        prefixes = []
        for k, end in enumerate(_record_ends(data), start=1):
            out = codec.decode(data[:end])
            assert out.layers == k
            prefixes.append({"layers": k, "bytes": int(end), "psnr": _psnr(out.params, target)})
        row[order] = {"bytes": len(data), "prefixes": prefixes}
    return row


def plot(rows_sizes, rows_layers, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    images = sorted({r["image"] for r in rows_layers})
    fig, axes = plt.subplots(1, len(images), figsize=(4 * len(images), 3.4), squeeze=False)
    for ax, image in zip(axes[0], images, strict=True):
        one = sorted((r["v3"]["bytes"], r["psnr"]) for r in rows_sizes if r["image"] == image)
        ax.plot(*zip(*one), "k-o", label="one-layer v3 files (N)")
        lay = next(r for r in rows_layers if r["image"] == image)
        for order, style in (("contribution", "-s"), ("scale", "--^"), ("given", ":v")):
            pts = [(p["bytes"], p["psnr"]) for p in lay[order]["prefixes"]]
            ax.plot(*zip(*pts), style, label=f"{_LAYERS.value} layers, {order}")
        ax.set_title(f"{image}, N={lay['n']}")
        ax.set_xlabel("bytes read")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv):
    del argv
    settings = resolve(rd_kodak.get_config("cpu"))
    points = sorted(int(p) for p in _POINTS.value)
    rows_sizes, rows_layers = [], []
    for name in _IMAGES.value:
        target = inputs.load_target(pathlib.Path(_DATA.value) / f"{name}.png", settings)
        for n in points:
            params = _fit(settings, target, name, n)
            rows_sizes.append(sizes(name, n, params, target))
            print(json.dumps(rows_sizes[-1]), flush=True)
        rows_layers.append(layered(name, points[-1], params, target))
        print(json.dumps(rows_layers[-1]), flush=True)
    if _JSON.value:
        pathlib.Path(_JSON.value).write_text(
            json.dumps({"sizes": rows_sizes, "layers": rows_layers}, indent=1)
        )
    if _PLOT.value:
        plot(rows_sizes, rows_layers, _PLOT.value)


if __name__ == "__main__":
    app.run(main)

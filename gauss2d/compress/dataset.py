"""Compress a folder of images: what ``experiments.compress`` and ``experiments.rd_sweep`` run.

Per image, WORKDIR/<image>/ holds <image>.g2d, decoded.png and result.json
(written last: its presence marks the image done, and a rerun with other
settings is refused rather than silently reused); WORKDIR/results.json
gathers every image (name, height, width, num_gaussians, bytes, bpp, psnr,
ms_ssim, encode / decode seconds, bits by attribute and, with ``baseline``
(the RD study), the same model's gaussianimage-mode file, its bytes and
PSNR side by side, and their means. There is no "size reduction" ratio:
the two files differ in quality as well as size (the v2 file is
fine-tuned, the gaussianimage one is not), so only the RD study's curves
(BD-rate against the ``gaussianimage_mode`` curve) compare them like for
like. The fit is ``experiments.fit``'s
(into WORKDIR/fit/<image>/, resumable mid-fit) unless a fitted work
directory is given.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import jax
import numpy as np

from gauss2d.compress.image import check_settings, compress_image, decode_and_render
from gauss2d.errors import Gauss2dError, ImageError
from gauss2d.io import checkpoint, runrecord
from gauss2d.io import images as data
from gauss2d.runner import dataset as runner
from gauss2d.runner import inputs, outputs
from gauss2d.settings import Settings
from gauss2d.train import densify

RESULT = "result.json"
# Config keys a finished image's result depends on: a rerun with other values
# must not silently reuse it.
RESULT_KEYS = ("seed", "data.downscale", "model", "optim", "loss", "render.backend", "codec")
MEAN_KEYS = (
    "bytes",
    "bpp",
    "psnr",
    "ms_ssim",
    "encode_seconds",
    "decode_seconds",
    "num_gaussians",
    "fit_psnr",
    "fit_seconds",
    "qat_seconds",
    "quantized_psnr_before_qat",
    "gaussianimage_bytes",
    "gaussianimage_bpp",
    "gaussianimage_psnr",
)


def fitted_params(
    path: pathlib.Path,
    target: np.ndarray,
    settings: Settings,
    workdir: pathlib.Path,
    label: str,
    fitted_dir: pathlib.Path | None,
):
    """(params, the fit's result row): from ``fitted_dir``, else fitted (resumably) into WORKDIR/fit."""
    if fitted_dir is not None:
        folder = pathlib.Path(fitted_dir) / path.stem
        row = json.loads((folder / outputs.RESULT).read_text()) if (folder / outputs.RESULT).exists() else {}
        if row and (row.get("height"), row.get("width")) != target.shape[:2]:  # experiments.fit records them
            raise Gauss2dError(
                f"'{folder}' was fitted at {row.get('width')}x{row.get('height')}, but data.downscale="
                f"{settings.data.downscale} gives {target.shape[1]}x{target.shape[0]}"
            )
        return checkpoint.load_params_npz(folder / "params.npz"), row
    row = runner.fit_one(path, settings, workdir / "fit", f"{label} fit", densify.fit_function(settings))
    return checkpoint.load_params_npz(workdir / "fit" / path.stem / "params.npz"), row


def compress_one(
    path: pathlib.Path,
    settings: Settings,
    workdir: pathlib.Path,
    label: str,
    fitted_dir: pathlib.Path | None = None,
    baseline: bool = False,
) -> dict[str, Any]:
    """Compresses one image into WORKDIR/<name>/ (or returns its earlier result); returns its result row.

    Args:
      path: the image file.
      settings: the run's settings (fit sections and ``codec``).
      workdir: output folder; the fit goes to WORKDIR/fit/<name>/ unless
        ``fitted_dir`` is given.
      label: progress prefix.
      fitted_dir: an ``experiments.fit`` work directory whose
        <name>/params.npz to compress instead of fitting.
      baseline: also encode the gaussianimage-mode file and record its
        gaussianimage_* figures (``compress_image``).

    Raises:
      Gauss2dError: an earlier result made with other settings, a fit of
        another size, or Gaussians the codec cannot store.
      ImageError: the image cannot be read.
    """
    name = path.stem
    outdir = workdir / name
    plain = settings.as_dict()
    made_with = {k: runrecord.select(plain, k) for k in RESULT_KEYS}
    made_with["fitted_dir"] = None if fitted_dir is None else str(fitted_dir)
    made_with["baseline"] = baseline
    # Through JSON, as result.json stores them: a tuple-valued key (e.g.
    # codec.search_position_steps) must compare equal to the list read back.
    made_with = json.loads(checkpoint.dumps_strict(made_with))
    row = outputs.read_result(outdir / RESULT, label)  # None: not done yet, or damaged (then redone)
    if row is not None:
        if row.get("settings") != made_with:
            raise Gauss2dError(
                f"'{outdir / RESULT}' was made with other settings (config or --fitted_dir): "
                "use another --workdir or delete that directory"
            )
        print(f"{label} already done: {outdir / RESULT}", flush=True)
        return row
    target = inputs.load_target(path, settings)
    params, fit_row = fitted_params(path, target, settings, workdir, label, fitted_dir)

    def progress(stage: str, info) -> None:
        runrecord.Progress(f"{label} {stage}")(info)

    key = jax.random.key(settings.seed)
    result = compress_image(target, settings, key, params=params, progress=progress, baseline=baseline)
    s = result.summary
    with checkpoint.atomic_write(outdir / f"{name}.g2d") as f:
        f.write(result.data)
    image, _ = decode_and_render(result.data, settings.render.backend)
    data.save_image(outdir / "decoded.png", image)
    row = {"name": name, **s, "fit_seconds": fit_row.get("fit_seconds"), "settings": made_with}
    against = ""
    if baseline:
        gi = s["gaussianimage"]
        row.update(
            gaussianimage_bits=gi["bits"]["total"],
            gaussianimage_bytes=gi["bytes"],
            gaussianimage_bpp=gi["bpp"],
            gaussianimage_psnr=gi["psnr"],
        )
        against = f" (gaussianimage mode, not fine-tuned: {gi['bytes']} bytes, {gi['psnr']:.2f} dB)"
    runrecord.write_json(outdir / RESULT, row)  # last: its presence marks the image done
    print(
        f"{label} done: {s['bytes']} bytes, {s['bpp']:.4f} bpp, psnr {s['psnr']:.2f} dB{against}, "
        f"decode {s['decode_seconds'] * 1e3:.0f} ms",
        flush=True,
    )
    return row


def mean_row(rows: list[dict]) -> dict[str, Any]:
    """Means over images of the numeric columns and of bits per Gaussian by attribute (and the baseline's)."""
    out: dict[str, Any] = {}
    for key in MEAN_KEYS:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    for prefix, pick in (("", lambda r: r), ("gaussianimage_", lambda r: r.get("gaussianimage"))):
        per = [pick(r)["bits_per_gaussian"] for r in rows if pick(r) is not None]
        out[f"{prefix}bits_per_gaussian"] = (
            {k: float(np.mean([p[k] for p in per])) for k in per[0]} if per else {}
        )
    return out


def compress_dataset(
    settings: Settings,
    workdir: pathlib.Path,
    fitted_dir: pathlib.Path | None = None,
    *,
    baseline: bool = False,
) -> dict[str, Any]:
    """Compresses every image of ``settings.data`` into ``workdir`` (``compress_one``); writes results.json.

    Raises:
      Gauss2dError: bad codec settings (before any fitting); after every
        other image is done, images that could not be read.
    """
    check_settings(settings)  # fail on a bad codec value before any fitting
    if settings.model.blend == "alpha":
        raise Gauss2dError("experiments.compress does not support model.blend='alpha'; use experiments.codec")
    paths = inputs.image_paths(settings)
    rows, errors = [], []
    for i, path in enumerate(paths):
        label = f"[{i + 1}/{len(paths)} {path.stem}]"
        try:
            rows.append(compress_one(path, settings, workdir, label, fitted_dir, baseline))
        except ImageError as err:
            print(f"{label} skipped: {err}", file=sys.stderr, flush=True)
            errors.append({"name": path.stem, "error": str(err)})
    results = {
        "images": rows,
        "mean": mean_row(rows),
        "device": runrecord.device_description(),
        "jax_version": jax.__version__,
        "git_commit": runrecord.git_commit(),
        "config": settings.as_dict(),
        "fitted_dir": None if fitted_dir is None else str(fitted_dir),
    }
    if errors:
        results["errors"] = errors
    runrecord.write_json(workdir / "results.json", results)
    if rows:
        m = results["mean"]
        against = (
            f"; gaussianimage mode {m['gaussianimage_bpp']:.4f} bpp, {m['gaussianimage_psnr']:.2f} dB"
            if baseline
            else ""
        )
        print(
            f"wrote {workdir / 'results.json'}: {len(rows)} image(s), mean {m['bpp']:.4f} bpp, "
            f"psnr {m['psnr']:.2f} dB{against}",
            flush=True,
        )
    outputs.raise_unreadable(errors)
    return results

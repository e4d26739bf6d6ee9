"""Per-image and per-run outputs of a fit: checkpoints, render.png, params.npz, result.json, results.json.

An SVG fitted against its k x supersampled target (``data.svg_supersample``)
also gets ``render_1x.png`` and ``psnr_1x``: the fit rendered at the
drawing's 1x frame and measured against the SVG rasterised there.

Every file is written atomically (``checkpoint.atomic_write``), so a crash
or Ctrl-C never leaves half a file; a damaged result.json is read back as
missing (and that image redone), never trusted.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.io import checkpoint, runrecord, svg
from gauss2d.io import images as data
from gauss2d.runner import measure
from gauss2d.runner.inputs import CHECKPOINT, Prepared, resume_settings
from gauss2d.settings import Settings
from gauss2d.train import batch as fit_batch
from gauss2d.train import engine as train
from gauss2d.train import fit

RESULT = "result.json"
RESULTS = "results.json"


def save_checkpoint(item: Prepared, state: train.TrainState, seconds: float, settings: Settings) -> None:
    """Writes the image's train state (fitted frame) with what a resume checks."""
    meta = {
        "config": resume_settings(settings),
        "name": item.name,
        "step": int(state.step),
        "fit_seconds": item.previous_seconds + seconds,
        "transposed": item.transposed,
    }
    checkpoint.save(item.outdir / CHECKPOINT, state, meta)


def finish(
    item: Prepared, result: fit.FitResult, settings: Settings, label: str, batch_size: int = 1
) -> dict:
    """Saves the final checkpoint and the upright outputs; returns the image's result row."""
    save_checkpoint(item, result.state, result.seconds, settings)
    image, psnr, ms_ssim = measure.final_metrics(result.params, item.target, settings, item.transposed)
    fps = measure.time_render(result.params, *item.target.shape[:2], settings)
    data.save_image(item.outdir / "render.png", image)
    params = fit_batch.transpose_params(result.params) if item.transposed else result.params
    checkpoint.save_params_npz(item.outdir / "params.npz", params)
    row = {
        "name": item.name,
        "height": image.shape[0],
        "width": image.shape[1],
        "num_gaussians": gaussians.num_gaussians(result.params),
        "iterations": int(result.state.step),
        "psnr": psnr,
        "ms_ssim": ms_ssim,
        "fit_seconds": item.previous_seconds + result.seconds,  # in a batch: the batch's wall time
        "render_fps": fps,
        "batch_size": batch_size,
    }
    if item.source is not None and svg.is_svg(item.source):
        _svg_frame_outputs(item, result.params, settings, row)
    if result.stopped_early:
        row["stopped_early"] = result.stopped_early
        print(f"{label} {item.name} stopped early: {result.stopped_early}", file=sys.stderr, flush=True)
    runrecord.write_json(item.outdir / RESULT, row)
    at_1x = f"at 1x {row['psnr_1x']:.2f} dB, " if "psnr_1x" in row else ""
    print(
        f"{label} {item.name} {'stopped early' if result.stopped_early else 'done'}: psnr {psnr:.2f} dB, "
        f"{at_1x}ms-ssim {ms_ssim if ms_ssim is None else round(ms_ssim, 4)}, "
        f"{runrecord.format_seconds(row['fit_seconds'])}, {fps:.0f} FPS",
        flush=True,
    )
    return row


def _svg_frame_outputs(item: Prepared, params, settings: Settings, row: dict) -> None:
    """Writes render_1x.png and adds psnr_1x, height_1x, width_1x to ``row`` (an SVG not fitted at 1x)."""
    measured = measure.svg_frame_metrics(
        params, *item.target.shape[:2], item.source, settings, item.transposed
    )
    if measured is None:
        return
    image, psnr = measured
    data.save_image(item.outdir / "render_1x.png", image)
    row.update(psnr_1x=psnr, height_1x=image.shape[0], width_1x=image.shape[1])


def interrupted(label: str, items: list[Prepared]) -> None:
    """Says, after Ctrl-C, which checkpoints are intact and how to resume."""
    names = ", ".join(str(i.outdir / CHECKPOINT) for i in items)
    print(
        f"\n{label} interrupted: the last checkpoint(s) ({names}) are intact; rerun the same command "
        "to resume",
        file=sys.stderr,
        flush=True,
    )


def read_result(path: pathlib.Path, label: str) -> dict | None:
    """A finished image's row, or None when there is none or it is damaged (then it is redone, and says so).

    The row is rewritten from the image's final checkpoint: a rerun resumes
    there and only renders, measures and writes again.
    """
    if not path.exists():
        return None
    try:
        row = json.loads(path.read_text())
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise ValueError("not a result row")
    except (OSError, UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
        print(f"{label} '{path}' is damaged ({type(err).__name__}: {err}): redoing that image", flush=True)
        return None
    return checkpoint.restore_nonfinite(row)


def mean_row(rows: list[dict]) -> dict:
    """Means of the numeric columns over the fitted images."""
    keys = ("psnr", "ms_ssim", "fit_seconds", "render_fps", "iterations", "num_gaussians")
    if any("psnr_1x" in r for r in rows):  # SVGs fitted supersampled: their 1x PSNR too
        keys += ("psnr_1x",)
    out = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def write_results(workdir: pathlib.Path, results: dict) -> None:
    """Writes WORKDIR/results.json and says so, with the mean PSNR."""
    runrecord.write_json(workdir / RESULTS, results)
    rows = results["images"]
    print(
        f"wrote {workdir / RESULTS}: {len(rows)} image(s), mean psnr "
        f"{results['mean']['psnr'] if rows else float('nan'):.2f} dB",
        flush=True,
    )


def raise_unreadable(errors: list[dict]) -> None:
    """After the other images are done: one error naming every image that could not be read."""
    if errors:
        raise Gauss2dError(
            f"{len(errors)} image(s) could not be read: " + "; ".join(e["error"] for e in errors)
        )

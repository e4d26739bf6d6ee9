"""Fitting a folder of images into a work directory, resumably.

What ``python -m experiments.fit`` runs. Per image, WORKDIR/<name>/ holds
``checkpoint.npz`` (train state, written atomically every
``checkpoint_every`` steps and at the end), ``render.png``, ``params.npz``
and ``result.json``; WORKDIR/results.json gathers every image. A rerun with
the same work directory skips finished images and resumes unfinished ones.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import checkpoint, data, fit, gaussians, metrics, optim
from gauss2d.errors import Gauss2dError, ImageError
from gauss2d.render import pair_capacity, render_with_stats

CHECKPOINT = "checkpoint.npz"
RESULT = "result.json"
# Config keys that must match for a checkpoint to be resumed.
RESUME_KEYS = ("seed", "model", "data.downscale", "loss", "render.backend")
# Rough bytes per pair slot in one training step: a [tile * tile] float32
# row for each of ~16 live per-pair arrays (weights, offsets, cotangents).
BYTES_PER_PAIR_PIXEL = 4 * 16


def format_seconds(seconds: float) -> str:
    """3725 -> '1h02m05s'."""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def git_commit() -> str:
    """The commit of the code that produced a result ("unknown" outside git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=pathlib.Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_description() -> str:
    """'cpu (2 devices)' or the accelerator's kind."""
    devices = jax.devices()
    kind = getattr(devices[0], "device_kind", devices[0].platform)
    return f"{devices[0].platform}: {kind} x{len(devices)}"


def write_json(path: pathlib.Path, payload: Any) -> None:
    """Writes JSON atomically (no half-written result survives a crash)."""
    with checkpoint.atomic_write(path) as f:
        f.write(json.dumps(payload, indent=2, sort_keys=False).encode())


def select(config: Mapping, dotted: str) -> Any:
    """config['a']['b'] for 'a.b'."""
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value.to_dict() if hasattr(value, "to_dict") else value


def image_paths(config: Mapping) -> list[pathlib.Path]:
    """The images to fit: data.dir (sorted, at most data.limit) or the sample."""
    directory = config["data"]["dir"]
    paths = data.list_images(directory) if directory else [data.sample_image_path()]
    limit = int(config["data"]["limit"])
    return paths[:limit] if limit > 0 else paths


def load_target(path: pathlib.Path, config: Mapping) -> np.ndarray:
    """The image as fitted: loaded, downscaled by data.downscale."""
    image = data.load_image(path)
    factor = int(config["data"]["downscale"])
    if factor > 1:
        image = data.downscale(image, factor)
    return image


def check_memory(name: str, capacity: int, height: int, width: int, config: Mapping) -> None:
    """Refuses an image whose estimated training memory exceeds memory_limit_gb."""
    tile = 8 if config["render"]["backend"] == "xla" else 16
    estimate = capacity * tile * tile * BYTES_PER_PAIR_PIXEL + height * width * 3 * 4 * 16
    limit = float(config["memory_limit_gb"]) * 2**30
    if estimate > limit:
        raise Gauss2dError(
            f"image '{name}' ({width}x{height}, {capacity} tile pairs) needs about "
            f"{estimate / 2**30:.1f} GiB to fit, over memory_limit_gb={config['memory_limit_gb']}: "
            "downscale it (--config.data.downscale=2), use fewer Gaussians, or raise the limit"
        )


def time_render(params: gaussians.Params, height: int, width: int, config: Mapping) -> float:
    """Render FPS: jitted render at fixed capacity, warm-up, median of repeats."""
    backend = config["render"]["backend"]
    proj = gaussians.project(params, height, width)
    capacity = pair_capacity(*proj, height, width, backend=backend)
    fn = jax.jit(lambda m, q, c: render_with_stats(m, q, c, height, width, backend=backend, capacity=capacity)[0])
    jax.block_until_ready(fn(*proj))  # compile + warm-up
    jax.block_until_ready(fn(*proj))
    times = []
    for _ in range(max(1, int(config["fps_repeats"]))):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*proj))
        times.append(time.perf_counter() - t0)
    return 1.0 / float(np.median(times))


def final_metrics(params, target: np.ndarray, config: Mapping) -> tuple[np.ndarray, float, float | None]:
    """(clamped render [H, W, 3], PSNR, MS-SSIM or None when the image is too small)."""
    height, width = target.shape[:2]
    proj = gaussians.project(params, height, width)
    capacity = pair_capacity(*proj, height, width, backend=config["render"]["backend"])
    image, _ = render_with_stats(*proj, height, width, backend=config["render"]["backend"], capacity=capacity)
    image = np.asarray(jnp.clip(image, 0.0, 1.0))
    psnr = float(metrics.psnr(image, target))
    return image, psnr, metrics.ms_ssim_or_none(image, target)


class Progress:
    """Prints one progress line per chunk: step, loss, PSNR, steps/s, ETA."""

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream or sys.stdout

    def __call__(self, info: Mapping) -> None:
        line = (
            f"{self.label} step {info['step']:>6d}/{info['iterations']}  loss {info['loss']:.5f}  "
            f"psnr {info['psnr']:6.2f} dB  {info['steps_per_second']:7.1f} steps/s  "
            f"ETA {format_seconds(info['eta_seconds'])}"
        )
        print(line, file=self.stream, flush=True)


def resume_state(ckpt_path: pathlib.Path, template: fit.TrainState, config: Mapping):
    """(state, metadata) from a checkpoint, or (None, {}) when there is none.

    Raises:
      Gauss2dError: the checkpoint belongs to a different configuration.
    """
    if not checkpoint.exists(ckpt_path):
        return None, {}
    meta = checkpoint.read_metadata(ckpt_path)
    for key in RESUME_KEYS:
        if meta.get("config", {}).get(key) != select(config, key):
            raise Gauss2dError(
                f"checkpoint '{ckpt_path}' was made with a different {key} "
                f"({meta.get('config', {}).get(key)!r}, now {select(config, key)!r}): "
                "use another --workdir or delete that directory"
            )
    leaves, meta = checkpoint.load(ckpt_path, template)
    return jax.tree_util.tree_map(jnp.asarray, leaves), meta


def fit_one(
    path: pathlib.Path,
    config: Mapping,
    workdir: pathlib.Path,
    label: str,
    fit_fn: Callable = fit.fit_image,
) -> dict:
    """Fits (or resumes, or skips) one image; returns its result row."""
    name = path.stem
    outdir = workdir / name
    if (outdir / RESULT).exists():
        print(f"{label} already done: {outdir / RESULT}", flush=True)
        return json.loads((outdir / RESULT).read_text())
    target = load_target(path, config)
    height, width = target.shape[:2]
    key = jax.random.key(int(config["seed"]))
    params = fit.initial_params(config, target, key)
    check_memory(name, pair_capacity(*gaussians.project(params, height, width), height, width,
                                     backend=config["render"]["backend"]), height, width, config)
    template = fit.init_state(params, optim.make_optimizer(config["optim"], params))
    ckpt_path = outdir / CHECKPOINT
    state, meta = resume_state(ckpt_path, template, config)
    if state is not None:
        print(f"{label} resuming from step {int(state.step)} ({ckpt_path})", flush=True)
    previous_seconds = float(meta.get("fit_seconds", 0.0))
    saved_config = {k: select(config, k) for k in RESUME_KEYS}
    progress = Progress(label)
    last_saved = [int(state.step) if state is not None else 0]

    def save(current: fit.TrainState, elapsed: float) -> None:
        checkpoint.save(
            ckpt_path,
            current,
            {"config": saved_config, "name": name, "step": int(current.step),
             "fit_seconds": previous_seconds + elapsed},
        )
        last_saved[0] = int(current.step)

    def on_chunk(current: fit.TrainState, info: dict) -> None:
        progress(info)
        if info["step"] - last_saved[0] >= int(config["checkpoint_every"]):
            save(current, info["elapsed_seconds"])

    try:
        result = fit_fn(target, config, key, state=state if state is not None else template, on_chunk=on_chunk)
    except KeyboardInterrupt:
        print(f"\n{label} interrupted: the last checkpoint ({ckpt_path}, step {last_saved[0]}) is "
              "intact; rerun the same command to resume", file=sys.stderr, flush=True)
        raise
    save(result.state, result.seconds)
    image, psnr, ms_ssim = final_metrics(result.params, target, config)
    fps = time_render(result.params, height, width, config)
    data.save_image(outdir / "render.png", image)
    checkpoint.save_params_npz(outdir / "params.npz", result.params)
    row = {
        "name": name,
        "height": height,
        "width": width,
        "num_gaussians": gaussians.num_gaussians(result.params),
        "iterations": int(result.state.step),
        "psnr": psnr,
        "ms_ssim": ms_ssim,
        "fit_seconds": previous_seconds + result.seconds,
        "render_fps": fps,
    }
    if result.stopped_early:
        row["stopped_early"] = result.stopped_early
    write_json(outdir / RESULT, row)
    print(f"{label} done: psnr {psnr:.2f} dB, ms-ssim {ms_ssim if ms_ssim is None else round(ms_ssim, 4)}, "
          f"{format_seconds(row['fit_seconds'])}, {fps:.0f} FPS", flush=True)
    return row


def mean_row(rows: list[dict]) -> dict:
    """Means of the numeric columns over the fitted images."""
    keys = ("psnr", "ms_ssim", "fit_seconds", "render_fps", "iterations", "num_gaussians")
    out = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def fit_dataset(config: Mapping, workdir: str | pathlib.Path, fit_fn: Callable = fit.fit_image) -> dict:
    """Fits every image of the config into ``workdir``; writes results.json.

    Returns:
      The results dict (also written to WORKDIR/results.json).

    Raises:
      Gauss2dError: bad config or data folder; also, after all other images
        were fitted and saved, when some image could not be read.
    """
    fit.validate_config(config)
    optim.make_optimizer(config["optim"], gaussians.init_random(jax.random.key(0), 1))  # validate early
    workdir = pathlib.Path(workdir)
    paths = image_paths(config)
    rows, errors = [], []
    for i, path in enumerate(paths):
        label = f"[{i + 1}/{len(paths)} {path.stem}]"
        try:
            rows.append(fit_one(path, config, workdir, label, fit_fn))
        except ImageError as err:
            print(f"{label} skipped: {err}", file=sys.stderr, flush=True)
            errors.append({"name": path.stem, "error": str(err)})
    results = {
        "images": rows,
        "mean": mean_row(rows),
        "device": device_description(),
        "jax_version": jax.__version__,
        "git_commit": git_commit(),
        "config": config.to_dict() if hasattr(config, "to_dict") else dict(config),
    }
    if errors:
        results["errors"] = errors
    write_json(workdir / "results.json", results)
    print(f"wrote {workdir / 'results.json'}: {len(rows)} image(s), mean psnr "
          f"{results['mean']['psnr'] if rows else float('nan'):.2f} dB", flush=True)
    if errors:
        raise Gauss2dError(f"{len(errors)} image(s) could not be read: " + "; ".join(e["error"] for e in errors))
    return results

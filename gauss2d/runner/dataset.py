"""Fitting a folder of images into a work directory, resumably, in batches, over devices and hosts.

What ``python -m experiments.fit`` runs. Per image, WORKDIR/<name>/ holds
``checkpoint.npz`` (train state, written atomically every
``checkpoint_every`` steps and at the end), ``render.png``, ``params.npz``
and ``result.json``; WORKDIR/results.json gathers every image. A rerun with
the same work directory skips finished images and resumes unfinished ones.

Batches (``config.batch_size``; DESIGN.md section 4, docs/batch.md): images
are grouped by the shape they are fitted at. Portrait images are fitted
transposed, so a 512x768 and a 768x512 image share a batch, and are written
back upright (render, parameters, metrics); any other size is its own bucket.
Each batch is split over the local devices (``fit_batch``); each image keeps
its own checkpoint, so a rerun resumes per image. With several processes
(``jax.distributed``) each fits its share of the images and process 0 merges
the rows into results.json. ``batch_size`` 1 on one device fits one image at
a time with ``fit_fn`` (which may be a non-batchable fit such as densify's).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import pathlib
import sys
import time
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians, metrics
from gauss2d.errors import Gauss2dError, ImageError
from gauss2d.io import checkpoint, runrecord
from gauss2d.io import images as data
from gauss2d.render import pair_capacity, registry, render_with_stats
from gauss2d.runner import distributed
from gauss2d.train import batch as fit_batch
from gauss2d.train import engine as train
from gauss2d.train import fit, optim

CHECKPOINT = "checkpoint.npz"
RESULT = "result.json"
# Config keys that must match for a checkpoint to be resumed.
RESUME_KEYS = ("seed", "model", "data.downscale", "loss", "render.backend")
# Rough bytes per pair slot in one training step: a [tile * tile] float32
# row for each of ~16 live per-pair arrays (weights, offsets, cotangents).
BYTES_PER_PAIR_PIXEL = 4 * 16


def image_paths(config: Mapping) -> list[pathlib.Path]:
    """The images to fit: data.dir (sorted, at most data.limit) or the sample."""
    directory = config["data"]["dir"]
    paths = data.list_images(directory) if directory else [data.sample_image_path()]
    limit = int(config["data"]["limit"])
    return paths[:limit] if limit > 0 else paths


def load_target(path: pathlib.Path, config: Mapping) -> np.ndarray:
    """The image as fitted: loaded (its size checked against memory_limit_gb first), downscaled."""
    image = data.load_image(path, memory_limit_gb=float(config["memory_limit_gb"]))
    factor = int(config["data"]["downscale"])
    if factor > 1:
        image = data.downscale(image, factor)
    return image


def check_memory(name: str, capacity: int, height: int, width: int, config: Mapping) -> None:
    """Refuses an image whose estimated training memory exceeds memory_limit_gb.

    ``capacity`` is ``pair_capacity``'s for the configured backend (which
    also registers a lazily imported backend's tile size).
    """
    tile = registry.lookup(config["render"]["backend"]).tile or 0  # the dense reference has no pairs
    estimate = capacity * tile * tile * BYTES_PER_PAIR_PIXEL + height * width * 3 * 4 * 16
    limit = float(config["memory_limit_gb"]) * 2**30
    if estimate > limit:
        raise Gauss2dError(
            f"image '{name}' ({width}x{height}, {capacity} tile pairs) needs about "
            f"{estimate / 2**30:.1f} GiB to fit, over memory_limit_gb={config['memory_limit_gb']}: "
            "downscale it (--config.data.downscale=2), use fewer Gaussians, or raise the limit"
        )


# Pair slots a fresh initialisation needs with 8 x 8 tiles, known before it
# exists (content init with configs/default.py, 4000 Gaussians: 0.41 slots
# per pixel on a flat 1000 x 1000 image, 0.39 on flat and noise 2000 x 2000
# ones; kodak_fast's 70000 on kodim23: 5.6 per Gaussian; random init: 3.6
# per Gaussian), rounded up. Large Gaussians cover (8 / tile)^2 as many tiles
# of another size; a small one at least one.
INIT_PAIRS_PER_PIXEL = 0.5
INIT_PAIRS_PER_GAUSSIAN = 8


def init_pairs_estimate(height: int, width: int, config: Mapping) -> int:
    """Pair slots the configured initialisation is expected to need: an upper estimate."""
    backend = config["render"]["backend"]
    tile = registry.lookup(backend).tile or 8
    area = (8 / tile) ** 2
    per_pixel = 0.0 if config["model"]["init"] == "random" else INIT_PAIRS_PER_PIXEL * area
    per_gaussian = max(1.0, INIT_PAIRS_PER_GAUSSIAN * area)
    return int(per_pixel * height * width + per_gaussian * int(config["model"]["num_points"]))


def check_memory_before_init(name: str, height: int, width: int, config: Mapping) -> None:
    """``check_memory`` with the pair count estimated, before the initialisation allocates.

    A 9000 x 9000 PNG of 236 KB tried to allocate 16.7 GB in the content
    initialisation, which ran before the check (issue 15); after the
    initialisation ``check_memory`` runs again with the real count.
    """
    check_memory(name, init_pairs_estimate(height, width, config), height, width, config)


def check_image_before_loading(path: pathlib.Path, config: Mapping) -> None:
    """``check_memory_before_init`` at the fitted size, from the file's header: no pixel decoded yet."""
    width, height = data.image_size(path)
    factor = max(1, int(config["data"]["downscale"]))
    check_memory_before_init(path.stem, max(1, height // factor), max(1, width // factor), config)


@functools.lru_cache(maxsize=16)
def render_program(height: int, width: int, backend: str, capacity: int) -> Callable:
    """The jitted render of a params pytree at a fixed capacity, compiled once per size and blend."""
    return jax.jit(lambda p: render_with_stats(p, height, width, backend=backend, capacity=capacity)[0])


def time_render(params: gaussians.Params, height: int, width: int, config: Mapping) -> float:
    """Render FPS: jitted render at fixed capacity, warm-up, median of repeats."""
    backend = config["render"]["backend"]
    capacity = pair_capacity(
        gaussians.project(params, fitted_height=height, fitted_width=width), height, width, backend=backend
    )
    fn = render_program(height, width, backend, capacity)
    jax.block_until_ready(fn(params))  # compile + warm-up
    jax.block_until_ready(fn(params))
    times = []
    for _ in range(max(1, int(config["fps_repeats"]))):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params))
        times.append(time.perf_counter() - t0)
    return 1.0 / float(np.median(times))


def final_metrics(
    params, target: np.ndarray, config: Mapping, transposed: bool = False
) -> tuple[np.ndarray, float, float | None]:
    """(clamped render [H, W, 3], PSNR, MS-SSIM or None when the image is too small).

    ``params`` and ``target`` are in the fitted frame; with ``transposed`` the
    render and the metrics are of the upright image.
    """
    height, width = target.shape[:2]
    backend = config["render"]["backend"]
    capacity = pair_capacity(
        gaussians.project(params, fitted_height=height, fitted_width=width), height, width, backend=backend
    )
    image = render_program(height, width, backend, capacity)(params)
    image = data.from_landscape(np.asarray(jnp.clip(image, 0.0, 1.0)), transposed)
    target = data.from_landscape(np.asarray(target), transposed)
    psnr = float(metrics.psnr(image, target))
    return image, psnr, metrics.ms_ssim_or_none(image, target)


def resume_state(ckpt_path: pathlib.Path, template: train.TrainState, config: Mapping):
    """(state, metadata) from a checkpoint, or (None, {}) when there is none.

    Raises:
      Gauss2dError: the checkpoint belongs to a different configuration.
    """
    if not checkpoint.exists(ckpt_path):
        return None, {}
    meta = checkpoint.read_metadata(ckpt_path)
    for key in RESUME_KEYS:
        if meta.get("config", {}).get(key) != runrecord.select(config, key):
            raise Gauss2dError(
                f"checkpoint '{ckpt_path}' was made with a different {key} "
                f"({meta.get('config', {}).get(key)!r}, now {runrecord.select(config, key)!r}): "
                "use another --workdir or delete that directory"
            )
    leaves, meta = checkpoint.load(ckpt_path, template)
    return jax.tree_util.tree_map(jnp.asarray, leaves), meta


@dataclasses.dataclass
class Prepared:
    """An image loaded and ready to fit: its target, key and (resumed or fresh) state."""

    name: str
    outdir: pathlib.Path
    target: np.ndarray  # [H, W, 3] as fitted (landscape)
    transposed: bool  # a portrait image, fitted transposed
    key: jax.Array
    state: train.TrainState
    previous_seconds: float  # fit time before this run (from the checkpoint)


def prepare(path: pathlib.Path, config: Mapping, workdir: pathlib.Path, label: str) -> Prepared:
    """Loads an image (landscape), checks its memory need and resumes its checkpoint if there is one.

    Raises:
      ImageError: the image cannot be read.
      Gauss2dError: it needs too much memory, or its checkpoint does not match.
    """
    name = path.stem
    check_image_before_loading(path, config)
    target, transposed = data.to_landscape(load_target(path, config))
    target = np.ascontiguousarray(target)
    height, width = target.shape[:2]
    key = jax.random.key(int(config["seed"]))
    params = fit.initial_params(config, target, key)
    capacity = pair_capacity(
        gaussians.project(params, fitted_height=height, fitted_width=width),
        height,
        width,
        backend=config["render"]["backend"],
    )
    check_memory(name, capacity, height, width, config)
    template = train.init_state(params, optim.make_optimizer(config["optim"], params))
    ckpt_path = workdir / name / CHECKPOINT
    state, meta = resume_state(ckpt_path, template, config)
    if state is not None:
        if bool(meta.get("transposed", False)) != transposed:
            raise Gauss2dError(
                f"checkpoint '{ckpt_path}' was fitted {'upright' if transposed else 'transposed'}, "
                f"this version fits the image {'transposed' if transposed else 'upright'}: "
                "delete that directory to refit it"
            )
        print(f"{label} resuming from step {int(state.step)} ({ckpt_path})", flush=True)
    return Prepared(
        name,
        workdir / name,
        target,
        transposed,
        key,
        template if state is None else state,
        float(meta.get("fit_seconds", 0.0)),
    )


def save_checkpoint(item: Prepared, state: train.TrainState, seconds: float, config: Mapping) -> None:
    """Writes the image's train state (fitted frame) with what a resume checks."""
    meta = {
        "config": {k: runrecord.select(config, k) for k in RESUME_KEYS},
        "name": item.name,
        "step": int(state.step),
        "fit_seconds": item.previous_seconds + seconds,
        "transposed": item.transposed,
    }
    checkpoint.save(item.outdir / CHECKPOINT, state, meta)


def finish(item: Prepared, result: fit.FitResult, config: Mapping, label: str, batch_size: int = 1) -> dict:
    """Saves the final checkpoint and the upright outputs; returns the image's result row."""
    save_checkpoint(item, result.state, result.seconds, config)
    image, psnr, ms_ssim = final_metrics(result.params, item.target, config, item.transposed)
    fps = time_render(result.params, *item.target.shape[:2], config)
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
    if result.stopped_early:
        row["stopped_early"] = result.stopped_early
        print(f"{label} {item.name} stopped early: {result.stopped_early}", file=sys.stderr, flush=True)
    runrecord.write_json(item.outdir / RESULT, row)
    print(
        f"{label} {item.name} {'stopped early' if result.stopped_early else 'done'}: psnr {psnr:.2f} dB, "
        "ms-ssim "
        f"{ms_ssim if ms_ssim is None else round(ms_ssim, 4)}, "
        f"{runrecord.format_seconds(row['fit_seconds'])}, "
        f"{fps:.0f} FPS",
        flush=True,
    )
    return row


def interrupted(label: str, items: list[Prepared]) -> None:
    names = ", ".join(str(i.outdir / CHECKPOINT) for i in items)
    print(
        f"\n{label} interrupted: the last checkpoint(s) ({names}) are intact; rerun the same command "
        "to resume",
        file=sys.stderr,
        flush=True,
    )


def fit_prepared(item: Prepared, config: Mapping, label: str, fit_fn: Callable = fit.fit_image) -> dict:
    """Fits one prepared image with ``fit_fn`` (one image at a time), checkpointing as it goes."""
    progress = runrecord.Progress(label)
    last_saved = [int(item.state.step)]

    def on_chunk(current: train.TrainState, info: dict) -> None:
        progress(info)
        if info["step"] - last_saved[0] >= int(config["checkpoint_every"]):
            save_checkpoint(item, current, info["elapsed_seconds"], config)
            last_saved[0] = info["step"]

    try:
        result = fit_fn(item.target, config, item.key, state=item.state, on_chunk=on_chunk)
    except KeyboardInterrupt:
        interrupted(label, [item])
        raise
    return finish(item, result, config, label)


def fit_one(
    path: pathlib.Path, config: Mapping, workdir: pathlib.Path, label: str, fit_fn: Callable = fit.fit_image
) -> dict:
    """Fits (or resumes, or skips) one image; returns its result row."""
    row = read_result(workdir / path.stem / RESULT, label)
    if row is not None:
        print(f"{label} already done: {workdir / path.stem / RESULT}", flush=True)
        return row
    return fit_prepared(prepare(path, config, pathlib.Path(workdir), label), config, label, fit_fn)


def fit_group(items: list[Prepared], config: Mapping, label: str, pad_to: int | None) -> list[dict]:
    """Fits same-shape prepared images as one batch over the local devices; returns their rows."""
    progress = runrecord.Progress(label)
    last_saved = [int(item.state.step) for item in items]

    def on_chunk(state: train.TrainState, infos: list[dict]) -> None:
        live = [i for i in infos if not i["done"]] or infos
        progress(
            {
                **live[0],
                "step": max(i["step"] for i in live),
                "loss": float(np.nanmean([i["loss"] for i in live])),
                "psnr": float(np.nanmean([i["psnr"] for i in live])),
            }
        )
        due = [b for b, i in enumerate(infos) if i["step"] - last_saved[b] >= int(config["checkpoint_every"])]
        host = jax.device_get(state) if due else None
        for b in due:
            save_checkpoint(items[b], fit_batch.tree_index(host, b), infos[b]["elapsed_seconds"], config)
            last_saved[b] = infos[b]["step"]

    try:
        results = fit_batch.fit_batch(
            np.stack([i.target for i in items]),
            config,
            [i.key for i in items],
            states=[i.state for i in items],
            devices=jax.local_devices(),
            pad_to=pad_to,
            on_chunk=on_chunk,
        )
    except KeyboardInterrupt:
        interrupted(label, items)
        raise
    return [finish(i, r, config, label, len(items)) for i, r in zip(items, results)]


def raise_unreadable(errors: list[dict]) -> None:
    """After the other images are done: one error naming every image that could not be read."""
    if errors:
        raise Gauss2dError(
            f"{len(errors)} image(s) could not be read: " + "; ".join(e["error"] for e in errors)
        )


def mean_row(rows: list[dict]) -> dict:
    """Means of the numeric columns over the fitted images."""
    keys = ("psnr", "ms_ssim", "fit_seconds", "render_fps", "iterations", "num_gaussians")
    out = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


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


def _pending(jobs: list, workdir: pathlib.Path, total: int, rows: list, errors: list) -> list:
    """The jobs still to fit; finished images' rows go to ``rows``, unreadable ones to ``errors``."""
    todo = []
    for job in jobs:
        label = f"[{job.index + 1}/{total} {job.path.stem}]"
        done = workdir / job.path.stem / RESULT
        if job.error:
            print(f"{label} skipped: {job.error}", file=sys.stderr, flush=True)
            errors.append({"name": job.path.stem, "error": job.error})
        elif (row := read_result(done, label)) is not None:
            print(f"{label} already done: {done}", flush=True)
            rows.append(row)
        else:
            todo.append(job)
    return todo


def _fit_jobs(
    todo: list,
    config: Mapping,
    workdir: pathlib.Path,
    total: int,
    slots: int,
    fit_fn: Callable,
    rows: list,
    errors: list,
) -> None:
    """Fits ``todo`` in batches of ``slots`` (1: one at a time with ``fit_fn``); appends rows / errors."""
    batches = distributed.group_batches(todo, slots)
    per_shape = collections.Counter(job.shape for job in todo)
    for k, group in enumerate(batches):
        label = (
            f"[batch {k + 1}/{len(batches)}: {len(group)} x {group[0].shape[1]}x{group[0].shape[0]}]"
            if slots > 1
            else f"[{group[0].index + 1}/{total} {group[0].path.stem}]"
        )
        items = []
        for job in group:
            try:
                items.append(prepare(job.path, config, workdir, label))
            except ImageError as err:
                print(f"{label} skipped: {err}", file=sys.stderr, flush=True)
                errors.append({"name": job.path.stem, "error": str(err)})
        if items and slots > 1:
            # A last, partial batch is padded to the full size only when that
            # program is compiled already (its shape had full batches).
            pad_to = slots if per_shape[group[0].shape] > slots else None
            rows.extend(fit_group(items, config, label, pad_to))
        elif items:
            rows.append(fit_prepared(items[0], config, label, fit_fn))


def fit_dataset(config: Mapping, workdir: str | pathlib.Path, fit_fn: Callable = fit.fit_image) -> dict:
    """Fits this process's share of the config's images into ``workdir``; writes results.json.

    Args:
      config: the full config (``batch_size`` images per batch, rounded up to
        a multiple of the local device count).
      workdir: output folder (shared by all processes of a multi-host run).
      fit_fn: the one-image fit (``fit.fit_image`` or e.g. densify's); the
        batch path is taken only with ``fit.fit_image``.

    Returns:
      The results dict of every process's images (process 0 writes it to
      WORKDIR/results.json).

    Raises:
      Gauss2dError: bad config or data folder; also, after all other images
        were fitted and saved, when some image could not be read.
    """
    fit.validate_config(config)
    if int(config["batch_size"]) < 1:
        raise Gauss2dError(f"config batch_size={config['batch_size']!r} is invalid: expected >= 1")
    optim.make_optimizer(config["optim"], gaussians.init_random(jax.random.key(0), 1))  # validate early
    start = time.perf_counter()
    workdir = pathlib.Path(workdir)
    checkpoint.check_writable(workdir, "--workdir", folder=True)  # before any work, not after it
    paths = image_paths(config)
    process, processes = jax.process_index(), jax.process_count()
    jobs = sorted(
        (distributed.plan_job(i, p, config["data"]["downscale"]) for i, p in enumerate(paths)),
        key=lambda j: (j.shape, j.index),
    )
    mine = sorted(distributed.shard(jobs, process, processes), key=lambda j: j.index)
    slots = fit_batch.padded_size(int(config["batch_size"]), None, len(jax.local_devices()))
    batched = slots > 1 and fit_fn is fit.fit_image
    if slots > 1 and not batched:
        print(
            f"note: {getattr(fit_fn, '__name__', fit_fn)} fits one image at a time; batch_size and extra "
            "devices are not used",
            flush=True,
        )
    rows, errors = [], []
    todo = _pending(mine, workdir, len(paths), rows, errors)
    _fit_jobs(todo, config, workdir, len(paths), slots if batched else 1, fit_fn, rows, errors)
    part = {"images": rows, "errors": errors, "seconds": time.perf_counter() - start}
    if processes > 1:  # this process's share, kept beside the merged file
        runrecord.write_json(workdir / f"results.process-{process:05d}-of-{processes:05d}.json", part)
    parts = distributed.allgather_json(part)
    rows, errors = distributed.merge_parts(parts, [p.stem for p in paths])
    results = {
        "images": rows,
        "mean": mean_row(rows),
        "total_seconds": max(p["seconds"] for p in parts),
        "batch_size": slots if batched else 1,
        "process_count": processes,
        "device": runrecord.device_description(),
        "jax_version": jax.__version__,
        "git_commit": runrecord.git_commit(),
        "config": config.to_dict() if hasattr(config, "to_dict") else dict(config),
    }
    if errors:
        results["errors"] = errors
    if process == 0:
        runrecord.write_json(workdir / "results.json", results)
        print(
            f"wrote {workdir / 'results.json'}: {len(rows)} image(s), mean psnr "
            f"{results['mean']['psnr'] if rows else float('nan'):.2f} dB",
            flush=True,
        )
    raise_unreadable(errors)
    return results

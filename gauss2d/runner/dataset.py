"""Fitting a folder of images into a work directory, resumably, in batches, over devices and hosts.

What ``python -m experiments.fit`` runs. Per image, WORKDIR/<name>/ holds
``checkpoint.npz`` (train state, written atomically every
``checkpoint_every`` steps and at the end), ``render.png``, ``params.npz``
and ``result.json`` (``outputs.py``); WORKDIR/results.json gathers every
image. A rerun with the same work directory skips finished images and
resumes unfinished ones (``inputs.prepare``).

Batches (``settings.batch_size``; DESIGN.md section 4, docs/batch.md): images
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
import pathlib
import sys
import time
from collections.abc import Callable

import jax
import numpy as np

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError, ImageError
from gauss2d.io import runrecord
from gauss2d.runner import distributed, inputs, outputs, preflight
from gauss2d.runner.inputs import Prepared
from gauss2d.settings import Settings
from gauss2d.train import batch as fit_batch
from gauss2d.train import engine as train
from gauss2d.train import fit, optim


def fit_prepared(item: Prepared, settings: Settings, label: str, fit_fn: Callable = fit.fit_image) -> dict:
    """Fits one prepared image with ``fit_fn`` (one image at a time), checkpointing as it goes."""
    progress = runrecord.Progress(label)
    last_saved = [int(item.state.step)]

    def on_chunk(current: train.TrainState, info: dict) -> None:
        progress(info)
        if info["step"] - last_saved[0] >= settings.checkpoint_every:
            outputs.save_checkpoint(item, current, info["elapsed_seconds"], settings)
            last_saved[0] = info["step"]

    try:
        result = fit_fn(item.target, settings, item.key, state=item.state, on_chunk=on_chunk)
    except KeyboardInterrupt:
        outputs.interrupted(label, [item])
        raise
    return outputs.finish(item, result, settings, label)


def fit_one(
    path: pathlib.Path,
    settings: Settings,
    workdir: pathlib.Path,
    label: str,
    fit_fn: Callable = fit.fit_image,
) -> dict:
    """Fits (or resumes, or skips) one image; returns its result row."""
    done = pathlib.Path(workdir) / path.stem / outputs.RESULT
    row = outputs.read_result(done, label)
    if row is not None:
        print(f"{label} already done: {done}", flush=True)
        return row
    item = inputs.prepare(path, settings, pathlib.Path(workdir), label)
    return fit_prepared(item, settings, label, fit_fn)


def fit_group(items: list[Prepared], settings: Settings, label: str, pad_to: int | None) -> list[dict]:
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
        due = [b for b, i in enumerate(infos) if i["step"] - last_saved[b] >= settings.checkpoint_every]
        host = jax.device_get(state) if due else None
        for b in due:
            state_b = fit_batch.tree_index(host, b)
            outputs.save_checkpoint(items[b], state_b, infos[b]["elapsed_seconds"], settings)
            last_saved[b] = infos[b]["step"]

    try:
        results = fit_batch.fit_batch(
            np.stack([i.target for i in items]),
            settings,
            [i.key for i in items],
            states=[i.state for i in items],
            devices=jax.local_devices(),
            pad_to=pad_to,
            on_chunk=on_chunk,
        )
    except KeyboardInterrupt:
        outputs.interrupted(label, items)
        raise
    return [outputs.finish(i, r, settings, label, len(items)) for i, r in zip(items, results)]


def _pending(jobs: list, workdir: pathlib.Path, total: int, rows: list, errors: list) -> list:
    """The jobs still to fit; finished images' rows go to ``rows``, unreadable ones to ``errors``."""
    todo = []
    for job in jobs:
        label = f"[{job.index + 1}/{total} {job.path.stem}]"
        done = workdir / job.path.stem / outputs.RESULT
        if job.error:
            print(f"{label} skipped: {job.error}", file=sys.stderr, flush=True)
            errors.append({"name": job.path.stem, "error": job.error})
        elif (row := outputs.read_result(done, label)) is not None:
            print(f"{label} already done: {done}", flush=True)
            rows.append(row)
        else:
            todo.append(job)
    return todo


def _fit_jobs(
    todo: list,
    settings: Settings,
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
                items.append(inputs.prepare(job.path, settings, workdir, label))
            except ImageError as err:
                print(f"{label} skipped: {err}", file=sys.stderr, flush=True)
                errors.append({"name": job.path.stem, "error": str(err)})
        if items and slots > 1:
            # A last, partial batch is padded to the full size only when that
            # program is compiled already (its shape had full batches).
            pad_to = slots if per_shape[group[0].shape] > slots else None
            rows.extend(fit_group(items, settings, label, pad_to))
        elif items:
            rows.append(fit_prepared(items[0], settings, label, fit_fn))


def fit_dataset(settings: Settings, workdir: str | pathlib.Path, fit_fn: Callable = fit.fit_image) -> dict:
    """Fits this process's share of the settings' images into ``workdir``; writes results.json.

    Args:
      settings: the run's settings (``batch_size`` images per batch, rounded
        up to a multiple of the local device count).
      workdir: output folder (shared by all processes of a multi-host run).
      fit_fn: the one-image fit (``fit.fit_image`` or e.g. densify's); the
        batch path is taken only with ``fit.fit_image``.

    Returns:
      The results dict of every process's images (process 0 writes it to
      WORKDIR/results.json).

    Raises:
      Gauss2dError: bad settings or data folder; also, after all other images
        were fitted and saved, when some image could not be read.
    """
    fit.validate_settings(settings)
    if settings.batch_size < 1:
        raise Gauss2dError(f"config batch_size={settings.batch_size!r} is invalid: expected >= 1")
    optim.make_optimizer(settings.optim, gaussians.init_random(jax.random.key(0), 1))  # validate early
    start = time.perf_counter()
    workdir = pathlib.Path(workdir)
    preflight.check_workdir(workdir)  # before any work, not after it
    paths = inputs.image_paths(settings)
    process, processes = jax.process_index(), jax.process_count()
    jobs = sorted(
        (
            distributed.plan_job(
                i, p, settings.data.downscale, settings.data.svg_size, settings.data.svg_supersample
            )
            for i, p in enumerate(paths)
        ),
        key=lambda j: (j.shape, j.index),
    )
    mine = sorted(distributed.shard(jobs, process, processes), key=lambda j: j.index)
    slots = fit_batch.padded_size(settings.batch_size, None, len(jax.local_devices()))
    batched = slots > 1 and fit_fn is fit.fit_image
    if slots > 1 and not batched:
        print(
            f"note: {getattr(fit_fn, '__name__', fit_fn)} fits one image at a time; batch_size and extra "
            "devices are not used",
            flush=True,
        )
    rows, errors = [], []
    todo = _pending(mine, workdir, len(paths), rows, errors)
    _fit_jobs(todo, settings, workdir, len(paths), slots if batched else 1, fit_fn, rows, errors)
    part = {"images": rows, "errors": errors, "seconds": time.perf_counter() - start}
    if processes > 1:  # this process's share, kept beside the merged file
        runrecord.write_json(workdir / f"results.process-{process:05d}-of-{processes:05d}.json", part)
    parts = distributed.allgather_json(part)
    rows, errors = distributed.merge_parts(parts, [p.stem for p in paths])
    results = {
        "images": rows,
        "mean": outputs.mean_row(rows),
        "total_seconds": max(p["seconds"] for p in parts),
        "batch_size": slots if batched else 1,
        "process_count": processes,
        "device": runrecord.device_description(),
        "jax_version": jax.__version__,
        "git_commit": runrecord.git_commit(),
        "config": settings.as_dict(),
    }
    if errors:
        results["errors"] = errors
    if process == 0:
        outputs.write_results(workdir, results)
    outputs.raise_unreadable(errors)
    return results

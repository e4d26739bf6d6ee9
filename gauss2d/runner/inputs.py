"""The images a run fits, loaded as fitted and ready to train: checked, initialised or resumed.

``image_paths`` and ``load_target`` are shared by the dataset runner, the
codec command line and the rate-distortion study; ``prepare`` is one
image's way from its file to a train state (its memory checked before and
after the initialisation, its checkpoint resumed when the settings match).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d.errors import Gauss2dError
from gauss2d.io import checkpoint, runrecord
from gauss2d.io import images as data
from gauss2d.render import capacity_for
from gauss2d.runner import preflight
from gauss2d.settings import Settings
from gauss2d.train import engine as train
from gauss2d.train import fit, optim

CHECKPOINT = "checkpoint.npz"
# Settings that must match for a checkpoint to be resumed. data.svg_size and
# svg_supersample are not among them: both change the target's shape, which the
# checkpoint's own check refuses, and leaving them out keeps older checkpoints resumable.
RESUME_KEYS = ("seed", "model", "data.downscale", "loss", "render.backend")


def image_paths(settings: Settings) -> list[pathlib.Path]:
    """The images to fit: data.dir (sorted, the first data.skip left out, at most data.limit) or the sample.

    Raises:
      Gauss2dError: a negative data.skip or data.limit, or a skip that leaves no image.
    """
    directory = settings.data.dir
    skip, limit = settings.data.skip, settings.data.limit
    if skip < 0 or limit < 0:
        raise Gauss2dError(f"config data.skip={skip}, data.limit={limit}: expected >= 0")
    paths = data.list_images(directory) if directory else [data.sample_image_path()]
    if skip and directory:
        if skip >= len(paths):
            raise Gauss2dError(
                f"config data.skip={skip} leaves none of the {len(paths)} images in '{directory}'"
            )
        paths = paths[skip:]
    return paths[:limit] if limit > 0 else paths


def load_target(path: pathlib.Path, settings: Settings) -> np.ndarray:
    """The image as fitted, [H, W, 3]: loaded (its size checked against memory_limit_gb first), downscaled."""
    image = data.load_image(
        path,
        memory_limit_gb=settings.memory_limit_gb,
        svg_size=settings.data.svg_size,
        svg_supersample=settings.data.svg_supersample,
    )
    if settings.data.downscale > 1:
        image = data.downscale(image, settings.data.downscale)
    return image


def resume_settings(settings: Settings) -> dict[str, Any]:
    """The values a checkpoint records and a resume compares (``RESUME_KEYS``), as plain JSON."""
    return {key: runrecord.select(settings, key) for key in RESUME_KEYS}


def resume_state(ckpt_path: pathlib.Path, template: train.TrainState, settings: Settings):
    """(state, metadata) from a checkpoint, or (None, {}) when there is none.

    Raises:
      Gauss2dError: the checkpoint belongs to different settings.
    """
    if not checkpoint.exists(ckpt_path):
        return None, {}
    meta = checkpoint.read_metadata(ckpt_path)
    for key, now in resume_settings(settings).items():
        then = meta.get("config", {}).get(key)
        if then != now:
            raise Gauss2dError(
                f"checkpoint '{ckpt_path}' was made with a different {key} ({then!r}, now {now!r}): "
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
    source: pathlib.Path | None = None  # the file it was read from (an SVG is also measured at 1x)


def prepare(path: pathlib.Path, settings: Settings, workdir: pathlib.Path, label: str) -> Prepared:
    """Loads an image (landscape), checks its memory need and resumes its checkpoint if there is one.

    Raises:
      ImageError: the image cannot be read.
      Gauss2dError: it needs too much memory, or its checkpoint does not match.
    """
    name = path.stem
    preflight.check_image_before_loading(path, settings)
    target, transposed = data.to_landscape(load_target(path, settings))
    target = np.ascontiguousarray(target)
    height, width = target.shape[:2]
    key = jax.random.key(settings.seed)
    params = fit.initial_params(settings, target, key)
    capacity = capacity_for(params, height, width, backend=settings.render.backend)
    preflight.check_memory(name, capacity, height, width, settings)
    template = train.init_state(params, optim.make_optimizer(settings.optim, params))
    ckpt_path = workdir / name / CHECKPOINT
    state, meta = resume_state(ckpt_path, template, settings)
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
        path,
    )

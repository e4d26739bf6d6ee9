"""Image file -> ``.g2d`` file and back, with every check first: what ``experiments.codec`` runs.

``encode_file`` refuses an output it must not replace and an image too large
for the memory limit before minutes of fitting, applies a preset, fits (or
takes given Gaussians), fine-tunes, encodes, meets a size or quality goal,
and writes the file atomically; with ``layers`` it writes a progressive
v3 file of that many layers from the same fine-tuned Gaussians and
quantisers. ``read_checked`` reads a file and checks, from its header
alone, that decoding and rendering fit the memory limit (every format
version: ``codec.budget``); ``decode_file`` decodes (optionally the first k
layers of a v3 file) and renders it to an image file.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax

from gauss2d import codec
from gauss2d.codec import budget
from gauss2d.compress import presets, rdo, targets
from gauss2d.compress.image import CompressResult, ProgressFn, check_settings, compress_image, file_summary
from gauss2d.errors import Gauss2dError
from gauss2d.io import checkpoint
from gauss2d.io import images as data
from gauss2d.render import capacity_for, render_clamped
from gauss2d.runner import inputs, preflight
from gauss2d.settings import Settings

NO_GOAL = targets.Goal()


def encode_line(output: pathlib.Path, summary: dict) -> str:
    """The one line the codec CLI prints after an encode (the GaussianImage file only when measured)."""
    gi = summary.get("gaussianimage")  # only with baseline=True
    baseline = f"; gaussianimage mode: {gi['bytes']} bytes, {gi['psnr']:.2f} dB" if gi else ""
    return (
        f"wrote {output}: {summary['bytes']} bytes, {summary['bpp']:.4f} bpp, {summary['num_gaussians']} "
        f"Gaussians, decoded psnr {summary['psnr']:.2f} dB ({summary['mode']} mode{baseline})"
    )


def encode_file(
    source: pathlib.Path,
    output: pathlib.Path,
    settings: Settings,
    *,
    params_path: str | None = None,
    preset: str | None = None,
    goal: targets.Goal = NO_GOAL,
    overwrite: bool = False,
    baseline: bool = False,
    progress: ProgressFn | None = None,
    layers: int | None = None,
    explicit: frozenset[str] = frozenset(),
    log: Callable[[str], None] | None = None,
) -> CompressResult:
    """Compresses the image ``source`` into the file ``output``; returns the result (summary included).

    Args:
      source: an image file.
      output: the ``.g2d`` path (written atomically).
      settings: the run's settings (a codec section is required).
      params_path: a ``params.npz`` of fitted Gaussians to encode instead of fitting.
      preset: "fast", "default" or "best" (``presets``: the fit's size and length too,
        from the image's pixels); None: the settings as they are.
      goal: a target bpp or PSNR (version 2; ``targets.Goal``).
      overwrite: replace an existing ``output``.
      baseline: also measure the gaussianimage-mode file (``compress_image``).
      progress: called with ("fit" | "qat", info) after every chunk.
      layers: write a v3 file of this many progressive layers (coarse to
        fine; ``codec.V3Settings``) from the v2 fine-tuning's Gaussians and
        quantiser state; None: the file ``settings.codec.version`` says.
      explicit: dotted config keys the user set; a preset keeps them.
      log: called with the preset's line (what it runs, the time to expect).

    Raises:
      Gauss2dError: an output that exists, bad settings, an image over the
        memory limit, an unmeetable goal, Gaussians the codec cannot store.
    """
    preflight.check_output(output, overwrite)  # before minutes of fitting, not after
    if preset is not None:
        pixels = None if params_path else _fitted_pixels(source, settings)
        settings = presets.apply_preset(settings, preset, pixels, explicit)
        if log is not None:
            log(presets.describe(preset, settings, pixels))
    check_settings(settings)  # every codec key, before minutes of fitting
    targets.check_goal(goal, settings.codec.version, settings.model.blend)
    if layers is not None:
        settings = _layered_settings(layers, settings, goal)
    params = checkpoint.load_params_npz(params_path) if params_path else None
    if params is None:  # from the image's header, before it is decoded or the fit allocates
        preflight.check_image_before_loading(source, settings)
    target = inputs.load_target(source, settings)
    height, width = target.shape[:2]
    if params is not None:
        capacity = capacity_for(params, height, width, backend=settings.render.backend)
        preflight.check_memory(source.name, capacity, height, width, settings)
    key = jax.random.key(settings.seed)
    result = compress_image(target, settings, key, params=params, progress=progress, baseline=baseline)
    if goal.given:
        result = _meet(result, settings, goal, target)
    preflight.check_output(output, overwrite)  # it may have appeared meanwhile
    with checkpoint.atomic_write(output) as f:
        f.write(result.data)
    return result


def _fitted_pixels(source: pathlib.Path, settings: Settings) -> int:
    """Pixels of the image as it will be fitted (``data.downscale``), from its header."""
    width, height = data.image_size(
        source, svg_size=settings.data.svg_size, svg_supersample=settings.data.svg_supersample
    )
    factor = max(1, settings.data.downscale)
    return max(1, height // factor) * max(1, width // factor)


def _meet(result: CompressResult, settings: Settings, goal: targets.Goal, target) -> CompressResult:
    """``result`` re-encoded for ``goal``, its summary measured from the new file."""
    backend = settings.render.backend
    trial = targets.meet_goal(
        result.params,
        result.codec_state,
        rdo.v2_settings(settings),
        goal,
        target,
        lambda p, h, w: render_clamped(p, h, w, backend=backend),
    )
    summary = dict(result.summary, **file_summary(trial.data, target, backend))
    summary.update(num_gaussians=trial.kept, target_step_factor=trial.scale)
    return CompressResult(trial.data, result.params, result.codec_state, summary)


def _layered_settings(layers: int, settings: Settings, goal: targets.Goal) -> Settings:
    """``settings`` writing a v3 file of ``layers`` layers (refused before minutes of fitting).

    The whole encode then runs as version 3 (``compress_image``): the rate-aware
    fine-tuning (prefix-weighted with ``codec.prefix_weight``) and the step search
    on real layered files.
    """
    if not (isinstance(layers, int) and layers >= 1):
        raise Gauss2dError(f"--layers={layers!r} must be an integer >= 1")
    if settings.codec.version not in (2, 3) or settings.model.blend != "sum" or goal.given:
        raise Gauss2dError(
            "--layers writes a v3 file with v2's quantisers: it needs codec.version=2 or 3, "
            "model.blend='sum' and no --target_bpp / --target_psnr"
        )
    codec_settings = dataclasses.replace(settings.codec, version=3, layers=layers)
    settings = settings.replace(codec=codec_settings)
    check_settings(settings)
    return settings


def read_checked(
    source: pathlib.Path, limit_gb: float | None, backend: str, layers: int | None = None
) -> codec.Decoded:
    """The decoded file (its first ``layers`` layers), after checking from its header that decoding
    and rendering fit ``limit_gb``."""
    blob = preflight.read_bounded(
        source, budget.MAX_FILE_BYTES, f"longer than any gauss2d file can be ({budget.MAX_FILE_BYTES})"
    )
    budget.check_file(blob, limit_gb, backend, f"'{source}'", "--memory_limit_gb")  # from the header, first
    return codec.decode(blob, layers=layers, memory_limit_gb=limit_gb)


def decode_file(
    source: pathlib.Path,
    output: pathlib.Path,
    *,
    limit_gb: float | None,
    backend: str,
    overwrite: bool = False,
    render: Callable[[codec.Decoded], Any] | None = None,
    layers: int | None = None,
) -> tuple[Any, float, codec.Decoded]:
    """Decodes ``source`` and writes its render to the image ``output``; returns (image, seconds, decoded).

    Args:
      render: ``Decoded -> [H', W', 3]`` for another size (experiments/size_flags.py);
        None renders at the fitted size after checking the pair buffer's memory.
      layers: render only the first k layers of a v3 file (None: every layer present;
        ``decoded.layers`` / ``total_layers`` say how many were read).
    """
    preflight.check_output(output, overwrite)
    start = time.perf_counter()
    decoded = read_checked(source, limit_gb, backend, layers)
    if render is not None:
        image = render(decoded)
    else:
        budget.check_render(decoded, limit_gb, backend, f"'{source}'", "--memory_limit_gb")  # pair buffer
        image = jax.block_until_ready(
            render_clamped(decoded.params, decoded.height, decoded.width, backend=backend)
        )
    seconds = time.perf_counter() - start
    data.save_image(output, image)
    return image, seconds, decoded


def decode_line(output: pathlib.Path, image, seconds: float) -> str:
    """The one line the codec CLI prints after a decode."""
    return f"wrote {output}: {image.shape[1]}x{image.shape[0]}, decoded and rendered in {seconds:.2f} s"


def layers_line(decoded: codec.Decoded, asked: int | None) -> str | None:
    """The stderr line of a decode that read fewer layers than the file declares for want of bytes."""
    if decoded.layers >= decoded.total_layers or (asked is not None and asked <= decoded.layers):
        return None
    return f"decoded {decoded.layers} of {decoded.total_layers} layers (file truncated)"

"""Encode an image to a gauss2d file (fit, quantisation-aware fine-tuning, entropy coding), or decode one.

    python -m experiments.codec encode INPUT.png OUTPUT.g2d
    python -m experiments.codec decode INPUT.g2d OUTPUT.png
    python -m experiments.codec decode INPUT.g2d OUTPUT.png --scale=0.25   # any size (experiments.render)
    python -m experiments.codec encode photo.png photo.g2d --config.model.num_points=5000 \\
        --config.codec.qat_steps=2000 --config.codec.mode=gaussianimage
    python -m experiments.codec encode photo.png photo.g2d --params=runs/photos/photo/params.npz

``--config`` (default configs/codec.py) takes the keys of experiments.fit plus
the codec section (codec.mode, codec.qat_steps, codec.chol_bits, ...). The
image is fitted at ``data.downscale``, so the file decodes to that size.
Neither command replaces an existing OUTPUT unless --overwrite; outputs are
written atomically. Progress goes to stdout; an error prints one line on
stderr and exits with status 2 (--verbosity=0 adds the logs).
"""

from __future__ import annotations

import pathlib
import time
import warnings

import jax
from absl import app, flags, logging

from experiments import cli, size_flags
from gauss2d import compress, gaussians
from gauss2d.codec import budget, decode
from gauss2d.compress import decode_render, rdo, targets
from gauss2d.errors import Gauss2dError
from gauss2d.io import checkpoint, runrecord
from gauss2d.io import images as data
from gauss2d.render import capacity_for, render_clamped
from gauss2d.runner import dataset as runner

_CONFIG = cli.define_config("configs/codec.py")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace OUTPUT if it exists.")
_PARAMS = flags.DEFINE_string(
    "params", None, "encode: fitted Gaussians (a params.npz of experiments.fit) instead of fitting INPUT."
)
_RESULTS = flags.DEFINE_string("results", None, "encode: also write the measurements to this JSON file.")
_MEMORY_LIMIT = flags.DEFINE_float(
    "memory_limit_gb",
    None,
    "decode: refuse a file whose header says decoding and rendering need more GiB "
    "(default: the config's memory_limit_gb, as for a fit).",
)
# Quality control (codec.version 2; gauss2d/compress/targets.py).
_TARGET_BPP = flags.DEFINE_float("target_bpp", None, "encode: a file of at most this bpp (and >= 0.9x it).")
_TARGET_PSNR = flags.DEFINE_float(
    "target_psnr", None, "encode: the smallest file found decoding to >= this PSNR."
)
_COMPILE_CACHE = flags.DEFINE_string(
    "compile_cache",
    None,
    "Folder of JAX's persistent compilation cache, so a later run reuses the compiled renderer "
    "(default: $GAUSS2D_COMPILE_CACHE or ~/.cache/gauss2d/jax; '' turns it off).",
)
_PRESET = flags.DEFINE_enum(
    "preset", None, list(PRESETS := ("fast", "default", "best")), "encode: trade encode time for size."
)

COMMANDS = ("encode", "decode")


def check_output(path: pathlib.Path, overwrite: bool) -> None:
    """Refuses to replace an existing file (or to write over a folder)."""
    if path.is_dir():
        raise Gauss2dError(f"output '{path}' is a directory, expected a file path")
    if path.exists() and not overwrite:
        raise Gauss2dError(f"output '{path}' exists; pass --overwrite to replace it")
    checkpoint.check_writable(path)  # a folder on the way that is a file, or not writable


def read_file(path: pathlib.Path, max_bytes: int | None = None) -> bytes:
    """The bytes of an input file (refused unread when over ``max_bytes``), or a Gauss2dError naming it."""
    if not path.is_file():
        reason = "it is a directory" if path.is_dir() else "no such file"
        raise Gauss2dError(f"cannot read '{path}': {reason}")
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise Gauss2dError(f"'{path}' is {size} bytes, longer than any gauss2d file can be ({max_bytes})")
    return path.read_bytes()


# preset -> (fine-tuning steps as a multiple of codec.qat_steps, codec.step_search).
# The fit (model.num_points, optim.iterations) is the caller's choice in every preset.
PRESET_STEPS = {"fast": (0.0, False), "default": (1.0, True), "best": (3.0, True)}


def apply_preset(config, preset: str | None):
    """The config with a preset's fine-tuning settings (None: unchanged)."""
    if preset is None:
        return config
    tune_x, search = PRESET_STEPS[preset]
    with config.unlocked():
        config.codec.qat_steps = round(config.codec.qat_steps * tune_x)
        config.codec.step_search = search
    return config


def check_targets(config) -> None:
    if _TARGET_BPP.value is not None and _TARGET_PSNR.value is not None:
        raise Gauss2dError("give --target_bpp or --target_psnr, not both")
    if (_TARGET_BPP.value is not None or _TARGET_PSNR.value is not None) and int(config.codec.version) != 2:
        raise Gauss2dError("--target_bpp and --target_psnr need codec.version=2")
    if (_TARGET_BPP.value is not None or _TARGET_PSNR.value is not None) and config.model.blend == "alpha":
        raise Gauss2dError("--target_bpp and --target_psnr do not support model.blend='alpha' yet")
    if _TARGET_BPP.value is not None and not _TARGET_BPP.value > 0:
        raise Gauss2dError(f"--target_bpp={_TARGET_BPP.value} must be > 0")


def hit_target(result, target, config) -> dict:
    """Re-encodes ``result`` for --target_bpp / --target_psnr; returns the new file's summary."""
    if gaussians.blend_of(result.params) == "alpha":  # --params may hold an alpha fit
        raise Gauss2dError("--target_bpp and --target_psnr do not support the alpha model yet")
    height, width = target.shape[:2]
    settings = rdo.settings_from_config(config)
    backend = config["render"]["backend"]
    if _TARGET_BPP.value is not None:
        trial = targets.to_bpp(result.params, height, width, result.codec_state, settings, _TARGET_BPP.value)
    else:
        trial = targets.to_psnr(
            result.params,
            height,
            width,
            result.codec_state,
            settings,
            _TARGET_PSNR.value,
            target,
            lambda p, h, w: render_clamped(p, h, w, backend=backend),
        )
    result.data = trial.data
    summary = dict(result.summary, **compress.file_summary(trial.data, target, backend))
    summary.update(num_gaussians=trial.kept, target_step_factor=trial.scale)
    return summary


def encode_command(source: pathlib.Path, output: pathlib.Path, config, overwrite: bool) -> None:
    check_output(output, overwrite)  # before minutes of fitting, not after
    config = apply_preset(config, _PRESET.value)
    check_targets(config)
    params = checkpoint.load_params_npz(_PARAMS.value) if _PARAMS.value else None
    if params is None:  # from the image's header, before it is decoded or the fit allocates
        runner.check_image_before_loading(source, config)
    target = runner.load_target(source, config)
    if params is not None:
        height, width = target.shape[:2]
        capacity = capacity_for(params, height, width, backend=config["render"]["backend"])
        runner.check_memory(source.name, capacity, height, width, config)

    def progress(stage: str, info) -> None:
        runrecord.Progress(f"[{source.name}] {stage}")(info)

    result = compress.compress_image(
        target, config, jax.random.key(int(config["seed"])), params=params, progress=progress
    )
    if _TARGET_BPP.value is not None or _TARGET_PSNR.value is not None:
        result.summary = hit_target(result, target, config)
    check_output(output, overwrite)  # it may have appeared meanwhile
    with checkpoint.atomic_write(output) as f:
        f.write(result.data)
    s = result.summary
    gi = s.get("gaussianimage")  # none for the alpha model: version 1 cannot store it
    baseline = f"; gaussianimage mode: {gi['bytes']} bytes, {gi['psnr']:.2f} dB" if gi else ""
    print(
        f"wrote {output}: {s['bytes']} bytes, {s['bpp']:.4f} bpp, {s['num_gaussians']} Gaussians, "
        f"decoded psnr {s['psnr']:.2f} dB ({s['mode']} mode{baseline})",
        flush=True,
    )
    if _RESULTS.value:
        runrecord.write_json(pathlib.Path(_RESULTS.value), {"input": str(source), "output": str(output), **s})


def decode_command(source: pathlib.Path, output: pathlib.Path, config, overwrite: bool) -> None:
    check_output(output, overwrite)
    limit = _MEMORY_LIMIT.value if _MEMORY_LIMIT.value is not None else float(config["memory_limit_gb"])
    backend = config["render"]["backend"]
    start = time.perf_counter()
    blob = read_file(source, max_bytes=budget.MAX_FILE_BYTES)
    budget.check_file(blob, limit, backend, f"'{source}'", "--memory_limit_gb")  # from the header, first
    decoded = decode(blob, memory_limit_gb=limit)
    if size_flags.given():  # --scale / --height / --width / --antialias: experiments/size_flags.py
        image, _, _ = size_flags.render(decoded.params, decoded.height, decoded.width, backend)
    else:
        budget.check_render(decoded, limit, backend, f"'{source}'", "--memory_limit_gb")  # pair buffer
        image = render_clamped(decoded.params, decoded.height, decoded.width, backend=backend)
        image = jax.block_until_ready(image)
    seconds = time.perf_counter() - start
    data.save_image(output, image)
    height, width = image.shape[:2]
    print(f"wrote {output}: {width}x{height}, decoded and rendered in {seconds:.2f} s", flush=True)


def main(argv):
    args = argv[1:]
    if len(args) != 3 or args[0] not in COMMANDS:
        raise app.UsageError(f"expected 'encode INPUT OUTPUT' or 'decode INPUT OUTPUT', got {args}")
    command, source, output = args[0], pathlib.Path(args[1]), pathlib.Path(args[2])
    if not flags.FLAGS["verbosity"].present:
        # A codec tool's stderr is for errors (one line); --verbosity=0 shows
        # the config, devices and compilation logs.
        logging.set_verbosity(logging.WARNING)
    # XLA on CPU cannot reuse the training chunk's donated buffers; harmless.
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    # The renderer's compilation is most of a fresh process's decode time; the
    # persistent cache keeps it for the next run (gauss2d/compress/decode_render.py).
    decode_render.enable_compile_cache(_COMPILE_CACHE.value)
    try:
        config = cli.load_config(_CONFIG)
        logging.info("config:\n%s", config)
        logging.info("devices: %s", jax.devices())
        run = encode_command if command == "encode" else decode_command
        run(source, output, config, _OVERWRITE.value)
    except (Gauss2dError, OSError) as err:  # CodecError is a Gauss2dError; OSError: unwritable output
        cli.fail(err)
    except KeyboardInterrupt:
        cli.exit_interrupted()


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)

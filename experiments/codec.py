"""Encode an image to a gauss2d file (fit, fine-tuning, entropy coding), or decode one.

    python -m experiments.codec encode INPUT.png OUTPUT.g2d
    python -m experiments.codec decode INPUT.g2d OUTPUT.png [--scale=0.25]   # any size (experiments.render)
    python -m experiments.codec decode photo.g2d prev.png --layers=1 --scale=0.25  # of an encode --layers=4
    python -m experiments.codec encode photo.png photo.g2d --config.model.num_points=5000 \\
        --config.codec.qat_steps=2000 --config.codec.version=1 --config.codec.mode=gaussianimage
    python -m experiments.codec encode photo.png photo.g2d --params=runs/photos/photo/params.npz

``--config`` (default configs/codec.py) takes experiments.fit's keys plus the
codec section; the image is fitted at ``data.downscale``. No OUTPUT is
replaced unless --overwrite; outputs are written atomically. An error prints
one line on stderr and exits with status 2 (--verbosity=0 adds the logs). A
layered (v3) file cut short decodes to its whole layers, says how many on
stderr and exits 0. The work is gauss2d/compress/files.py's.
"""

from __future__ import annotations

import pathlib
import sys
import warnings

import jax
from absl import app, flags, logging

from experiments import cli, size_flags
from gauss2d import settings as settings_lib
from gauss2d.compress import decode_render, files, presets, targets
from gauss2d.errors import Gauss2dError
from gauss2d.io import runrecord

_CONFIG = cli.define_config("configs/codec.py")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace OUTPUT if it exists.")
_PARAMS = flags.DEFINE_string("params", None, "encode: fitted Gaussians (a params.npz of experiments.fit).")
_RESULTS = flags.DEFINE_string("results", None, "encode: also write the measurements to this JSON file.")
_MEMORY_LIMIT = flags.DEFINE_float(
    "memory_limit_gb", None, "decode: refuse a file needing more GiB (default: the config's memory_limit_gb)."
)
_TARGET_BPP = flags.DEFINE_float("target_bpp", None, "encode: a file of at most this bpp (and >= 0.9x it).")
_TARGET_PSNR = flags.DEFINE_float("target_psnr", None, "encode: the smallest file decoding to >= this PSNR.")
_BASELINE = flags.DEFINE_bool("baseline", False, "encode: also measure the gaussianimage-mode file.")
_COMPILE_CACHE = flags.DEFINE_string(
    "compile_cache", None, "JAX compile cache (default $GAUSS2D_COMPILE_CACHE, ~/.cache/gauss2d/jax; '': off)"
)
_LAYERS = flags.DEFINE_integer("layers", None, "encode: L progressive layers (v3); decode: the first k.")
_PRESET = flags.DEFINE_enum(
    "preset", None, list(presets.PRESETS), "encode: the whole encode at a time budget (fit included)."
)


def encode(source: pathlib.Path, output: pathlib.Path, settings: settings_lib.Settings) -> None:
    goal = targets.Goal(_TARGET_BPP.value, _TARGET_PSNR.value)
    progress = lambda stage, info: runrecord.Progress(f"[{source.name}] {stage}")(info)  # noqa: E731
    result = files.encode_file(
        source, output, settings, params_path=_PARAMS.value, preset=_PRESET.value, goal=goal,
        overwrite=_OVERWRITE.value, baseline=_BASELINE.value, progress=progress, layers=_LAYERS.value,
        explicit=cli.overridden_keys(sys.argv), log=lambda line: print(line, flush=True),
    )  # fmt: skip
    print(files.encode_line(output, result.summary), flush=True)
    if _RESULTS.value:
        summary = {"input": str(source), "output": str(output), **result.summary}
        runrecord.write_json(pathlib.Path(_RESULTS.value), summary)


def decode(source: pathlib.Path, output: pathlib.Path, settings: settings_lib.Settings) -> None:
    limit = _MEMORY_LIMIT.value if _MEMORY_LIMIT.value is not None else settings.memory_limit_gb
    backend = settings.render.backend
    image, seconds, decoded = files.decode_file(
        source, output, limit_gb=limit, backend=backend, overwrite=_OVERWRITE.value,
        render=size_flags.decoded_renderer(backend), layers=_LAYERS.value,
    )  # fmt: skip
    if line := files.layers_line(decoded, _LAYERS.value):  # a cut file: what it held, and exit 0
        print(line, file=sys.stderr, flush=True)
    print(files.decode_line(output, image, seconds), flush=True)


def main(argv):
    args = argv[1:]
    if len(args) != 3 or args[0] not in ("encode", "decode"):
        raise app.UsageError(f"expected 'encode INPUT OUTPUT' or 'decode INPUT OUTPUT', got {args}")
    if not flags.FLAGS["verbosity"].present:  # stderr is for one-line errors; --verbosity=0 shows logs
        logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")  # XLA on CPU; harmless
    decode_render.enable_compile_cache(_COMPILE_CACHE.value)  # a later run reuses the compiled renderer
    try:
        config = cli.load_config(_CONFIG)
        logging.info("config:\n%s\ndevices: %s", config, jax.devices())
        run = encode if args[0] == "encode" else decode
        run(pathlib.Path(args[1]), pathlib.Path(args[2]), settings_lib.resolve(config))
    except (Gauss2dError, OSError) as err:  # CodecError is a Gauss2dError; OSError: unwritable output
        cli.fail(err)
    except KeyboardInterrupt:
        cli.exit_interrupted()


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)

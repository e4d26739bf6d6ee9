"""Encode an image to a gauss2d file (fit, quantisation-aware fine-tuning, entropy coding), or decode one.

    python -m experiments.codec encode INPUT.png OUTPUT.g2d
    python -m experiments.codec decode INPUT.g2d OUTPUT.png
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
import warnings

import jax
from absl import app, flags, logging

from experiments import cli
from gauss2d import checkpoint, compress, data, runner, runrecord
from gauss2d.errors import Gauss2dError

_CONFIG = cli.define_config("configs/codec.py")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace OUTPUT if it exists.")
_PARAMS = flags.DEFINE_string(
    "params", None, "encode: fitted Gaussians (a params.npz of experiments.fit) instead of fitting INPUT."
)
_RESULTS = flags.DEFINE_string("results", None, "encode: also write the measurements to this JSON file.")

COMMANDS = ("encode", "decode")


def check_output(path: pathlib.Path, overwrite: bool) -> None:
    """Refuses to replace an existing file (or to write over a folder)."""
    if path.is_dir():
        raise Gauss2dError(f"output '{path}' is a directory, expected a file path")
    if path.exists() and not overwrite:
        raise Gauss2dError(f"output '{path}' exists; pass --overwrite to replace it")


def read_file(path: pathlib.Path) -> bytes:
    """The bytes of an input file, or a Gauss2dError naming it."""
    if not path.is_file():
        reason = "it is a directory" if path.is_dir() else "no such file"
        raise Gauss2dError(f"cannot read '{path}': {reason}")
    return path.read_bytes()


def encode_command(source: pathlib.Path, output: pathlib.Path, config, overwrite: bool) -> None:
    check_output(output, overwrite)  # before minutes of fitting, not after
    target = runner.load_target(source, config)
    params = checkpoint.load_params_npz(_PARAMS.value) if _PARAMS.value else None

    def progress(stage: str, info) -> None:
        runrecord.Progress(f"[{source.name}] {stage}")(info)

    result = compress.compress_image(
        target, config, jax.random.key(int(config["seed"])), params=params, progress=progress
    )
    check_output(output, overwrite)  # it may have appeared meanwhile
    with checkpoint.atomic_write(output) as f:
        f.write(result.data)
    s = result.summary
    gi = s["gaussianimage"]
    print(
        f"wrote {output}: {s['bytes']} bytes, {s['bpp']:.4f} bpp, {s['num_gaussians']} Gaussians, "
        f"decoded psnr {s['psnr']:.2f} dB ({s['mode']} mode; gaussianimage mode: {gi['bytes']} bytes, "
        f"{gi['psnr']:.2f} dB)",
        flush=True,
    )
    if _RESULTS.value:
        runrecord.write_json(pathlib.Path(_RESULTS.value), {"input": str(source), "output": str(output), **s})


def decode_command(source: pathlib.Path, output: pathlib.Path, config, overwrite: bool) -> None:
    check_output(output, overwrite)
    image, seconds = compress.decode_and_render(read_file(source), config["render"]["backend"])
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

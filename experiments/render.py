"""Render fitted Gaussians (a params.npz or a .g2d file) to a PNG at any size, anti-aliased.

    python -m experiments.render runs/default/kodim23/params.npz big.png --scale=4
    python -m experiments.render photo.g2d thumb.png --scale=0.25          # anti-aliased
    python -m experiments.render photo.g2d thumb.png --width=200 --noantialias
    python -m experiments.render params.npz out.png --fit_height=256 --fit_width=384 --height=1024

INPUT is a ``params.npz`` (experiments.fit) or a gauss2d file (experiments.codec
encode), told apart by their first bytes. A .g2d file records its fitted size;
for a params.npz it is read from the ``result.json`` that experiments.fit
writes beside it, or given with ``--fit_height`` / ``--fit_width``. The output
size is ``--scale`` or ``--height`` / ``--width`` (one alone keeps the aspect
ratio; neither: the fitted size). ``--antialias`` (on by default when the
output is smaller than the fitted frame) adds the output pixel's footprint to
every Gaussian (docs/render.md). OUTPUT is not replaced unless --overwrite; it
is written atomically. An error prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import json
import pathlib

from absl import app, flags, logging

from experiments import cli, size_flags
from gauss2d import codec, gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.io import checkpoint
from gauss2d.io import images as data

_FIT_HEIGHT = flags.DEFINE_integer(
    "fit_height", None, "params.npz: the height it was fitted at (default: from result.json beside it)."
)
_FIT_WIDTH = flags.DEFINE_integer(
    "fit_width", None, "params.npz: the width it was fitted at (default: from result.json beside it)."
)
_BACKEND = flags.DEFINE_string("backend", "xla", "Render backend: xla, pallas (GPU) or reference.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace OUTPUT if it exists.")

ZIP_MAGIC = b"PK\x03\x04"  # a .npz is a zip archive
MAX_INPUT_BYTES = 1 << 30  # no params file or .g2d of ours is near 1 GiB


def read_input(path: pathlib.Path) -> bytes:
    """The bytes of INPUT, or a Gauss2dError naming it."""
    if not path.is_file():
        reason = "it is a directory" if path.is_dir() else "no such file"
        raise Gauss2dError(f"cannot read '{path}': {reason}")
    if path.stat().st_size > MAX_INPUT_BYTES:
        size = path.stat().st_size
        raise Gauss2dError(f"'{path}' is {size} bytes, over the {MAX_INPUT_BYTES}-byte limit")
    return path.read_bytes()


def fitted_frame(path: pathlib.Path) -> tuple[int, int]:
    """(height, width) a params.npz was fitted at: the flags, else its result.json."""
    if _FIT_HEIGHT.value is not None or _FIT_WIDTH.value is not None:
        if _FIT_HEIGHT.value is None or _FIT_WIDTH.value is None:
            raise Gauss2dError("give both --fit_height and --fit_width")
        height, width = _FIT_HEIGHT.value, _FIT_WIDTH.value
        if height < 1 or width < 1:
            raise Gauss2dError(f"--fit_height={height} and --fit_width={width} must be >= 1")
        return height, width
    result = path.parent / "result.json"
    try:
        row = json.loads(result.read_text())
        height, width = int(row["height"]), int(row["width"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise Gauss2dError(
            f"the fitted size of '{path}' is unknown: no usable '{result}' ({type(err).__name__}); "
            "pass --fit_height and --fit_width"
        ) from None
    if height < 1 or width < 1:
        raise Gauss2dError(f"'{result}' gives a fitted size {width}x{height}; pass --fit_height, --fit_width")
    return height, width


def load(path: pathlib.Path) -> tuple[gaussians.Params, int, int]:
    """(raw parameters, fitted height, fitted width) of a params.npz or a .g2d file."""
    blob = read_input(path)
    if blob.startswith(ZIP_MAGIC):
        params = checkpoint.load_params_npz(path)
        return (params, *fitted_frame(path))
    try:
        decoded = codec.decode(blob)
    except codec.CodecError as err:
        raise Gauss2dError(f"'{path}' is neither a params.npz nor a readable gauss2d file: {err}") from None
    return decoded.params, decoded.height, decoded.width


def main(argv):
    args = argv[1:]
    if len(args) != 2:
        raise app.UsageError(f"expected INPUT OUTPUT.png, got {args}")
    source, output = pathlib.Path(args[0]), pathlib.Path(args[1])
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    try:
        if output.is_dir():
            raise Gauss2dError(f"output '{output}' is a directory, expected a file path")
        if output.exists() and not _OVERWRITE.value:
            raise Gauss2dError(f"output '{output}' exists; pass --overwrite to replace it")
        params, fit_height, fit_width = load(source)
        size_flags.output_size(fit_height, fit_width)  # a bad size fails before any rendering
        image, antialias, seconds = size_flags.render(params, fit_height, fit_width, _BACKEND.value)
        data.save_image(output, image)
        height, width = image.shape[:2]
        filtered = "anti-aliased" if antialias else "no prefilter"
        print(
            f"wrote {output}: {width}x{height} from {source} (fitted {fit_width}x{fit_height}, "
            f"{gaussians.num_gaussians(params)} Gaussians, {filtered}), "
            f"rendered in {seconds:.2f} s",
            flush=True,
        )
    except (Gauss2dError, OSError) as err:  # CodecError and CheckpointError are Gauss2dErrors
        cli.fail(err)
    except KeyboardInterrupt:
        cli.exit_interrupted()


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)

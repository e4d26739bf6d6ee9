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

import pathlib

from absl import app, flags, logging

from experiments import cli, size_flags
from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.io import images as data
from gauss2d.runner import fitted, preflight

_FIT_HEIGHT = flags.DEFINE_integer(
    "fit_height", None, "params.npz: the height it was fitted at (default: from result.json beside it)."
)
_FIT_WIDTH = flags.DEFINE_integer(
    "fit_width", None, "params.npz: the width it was fitted at (default: from result.json beside it)."
)
_BACKEND = flags.DEFINE_string("backend", "xla", "Render backend: xla, pallas (GPU) or reference.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace OUTPUT if it exists.")


def main(argv):
    args = argv[1:]
    if len(args) != 2:
        raise app.UsageError(f"expected INPUT OUTPUT.png, got {args}")
    source, output = pathlib.Path(args[0]), pathlib.Path(args[1])
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    try:
        preflight.check_output(output, _OVERWRITE.value)
        params, fit_height, fit_width = fitted.load_fitted(source, _FIT_HEIGHT.value, _FIT_WIDTH.value)
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

"""Compress a folder of images: fit, fine-tune with quantisation, encode, decode, measure.

    python -m experiments.compress --config=configs/kodak_codec.py --workdir=runs/kodak_codec
    python -m experiments.compress --config=configs/kodak_codec.py:smoke          # CPU check
    python -m experiments.compress --config=configs/kodak_codec.py --fitted_dir=runs/kodak

Fits each image as experiments.fit does (into WORKDIR/fit/<image>/, resumable
mid-fit), or takes the fitted Gaussians of an experiments.fit work directory
(``--fitted_dir``: its <image>/params.npz). Then per image
WORKDIR/<image>/ holds <image>.g2d, decoded.png and result.json; WORKDIR/results.json
gathers every image (name, height, width, num_gaussians, bytes, bpp, psnr,
ms_ssim, encode / decode seconds, bits by attribute and, with --baseline,
the same model's gaussianimage-mode file) and their means. Rerunning skips
finished images.
"""

from __future__ import annotations

import pathlib

import jax
from absl import app, flags, logging

from experiments import cli
from gauss2d import settings
from gauss2d.compress import dataset
from gauss2d.errors import Gauss2dError
from gauss2d.io import runrecord

_CONFIG = cli.define_config("configs/kodak_codec.py")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default: runs/<config name>).")
_FITTED_DIR = flags.DEFINE_string(
    "fitted_dir", None, "An experiments.fit work directory whose <image>/params.npz to compress (no fitting)."
)
_BASELINE = flags.DEFINE_bool("baseline", False, "Also measure each image's gaussianimage-mode file.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    workdir = pathlib.Path(
        _WORKDIR.value or cli.default_workdir(flags.FLAGS["config"].config_filename, "compress")
    )
    try:
        config = cli.load_config(_CONFIG)
        logging.info("config:\n%s", config)
        logging.info("devices: %s", jax.devices())
        print(f"gauss2d: compressing into {workdir} on {runrecord.device_description()}", flush=True)
        fitted_dir = pathlib.Path(_FITTED_DIR.value) if _FITTED_DIR.value else None
        dataset.compress_dataset(settings.resolve(config), workdir, fitted_dir, baseline=_BASELINE.value)
    except (Gauss2dError, OSError) as err:  # CodecError is a Gauss2dError
        cli.fail(err)
    except KeyboardInterrupt:
        cli.exit_interrupted()


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)

"""Rate-distortion study: gauss2d at several rates against JPEG, WebP and JPEG 2000, with BD-rates.

    python -m experiments.rd_sweep --config=configs/rd_kodak.py --workdir=runs/rd_kodak        # GPU
    python -m experiments.rd_sweep --config=configs/rd_kodak.py:smoke                         # minutes, CPU
    python -m experiments.rd_sweep --config=configs/rd_kodak.py --config.data.dir=DIR

Writes WORKDIR/rd.csv (one row per image x method x point), rd_summary.json
(mean curves, BD-rate of gauss2d against each codec and published curve),
rd_psnr.png and rd_msssim.png; see gauss2d/rd/sweep.py for the layout.
Rerunning resumes: finished fits, files and baseline points are kept.
"""

from __future__ import annotations

import pathlib
import sys

import jax
from absl import app, flags, logging

from experiments import cli
from gauss2d import settings
from gauss2d.errors import Gauss2dError
from gauss2d.io import runrecord
from gauss2d.rd import sweep

_CONFIG = cli.define_config("configs/rd_kodak.py")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default: runs/<config name>).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    workdir = pathlib.Path(_WORKDIR.value or cli.default_workdir(flags.FLAGS["config"].config_filename, "rd"))
    try:
        config = cli.load_config(_CONFIG)
        logging.info("config:\n%s", config)
        logging.info("devices: %s", jax.devices())
        print(
            f"gauss2d: rate-distortion study into {workdir} on {runrecord.device_description()}", flush=True
        )
        sweep.run_sweep(settings.resolve(config), workdir)
    except (Gauss2dError, OSError) as err:
        cli.fail(err)
    except KeyboardInterrupt:
        print(f"interrupted: rerun the same command to resume from {workdir}", file=sys.stderr)
        cli.exit_interrupted()


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)

"""Fit images as 2D Gaussians.

    python -m experiments.fit                                   # the built-in sample, CPU
    python -m experiments.fit --config=configs/kodak.py --workdir=runs/kodak
    python -m experiments.fit --config.data.dir=photos --config.model.num_points=5000

Writes WORKDIR/results.json and WORKDIR/<image>/{render.png,params.npz,result.json,
checkpoint.npz}. Rerunning the same command resumes.
"""

from __future__ import annotations

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from gauss2d import pipeline
from gauss2d.errors import Gauss2dError

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default: runs/<config name>).")


def default_workdir(config_path: str) -> str:
    """runs/default for configs/default.py, runs/kodak_smoke for configs/kodak.py:smoke."""
    stem = config_path.rsplit("/", 1)[-1].replace(".py", "").replace(":", "_")
    return f"runs/{stem or 'default'}"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    workdir = _WORKDIR.value or default_workdir(flags.FLAGS["config"].config_filename)
    logging.info("config:\n%s", config)
    logging.info("devices: %s", jax.devices())
    print(f"gauss2d: fitting into {workdir} on {pipeline.device_description()}", flush=True)
    try:
        from gauss2d import densify  # noqa: PLC0415 (optional error-guided allocation)

        fit_fn = densify.fit_function(config)
    except ImportError:
        from gauss2d import fit  # noqa: PLC0415

        fit_fn = fit.fit_image
    try:
        pipeline.fit_dataset(config, workdir, fit_fn)
    except Gauss2dError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    app.run(main)

"""Fit images as 2D Gaussians.

    python -m experiments.fit                                   # the built-in sample, CPU
    python -m experiments.fit --config=configs/kodak.py --workdir=runs/kodak
    python -m experiments.fit --config.data.dir=photos --config.model.num_points=5000
    python -m experiments.fit --config.data.dir=photos --config.batch_size=8   # 8 images at once

Writes WORKDIR/results.json and WORKDIR/<image>/{render.png,params.npz,result.json,
checkpoint.npz}. Rerunning the same command resumes. Every local GPU is used
(each batch is split over them). Several hosts: start one process per host
with the same --coordinator_address and --num_processes and its own
--process_id, or --distributed on a cluster JAX detects (SLURM, Open MPI);
see docs/batch.md.
"""

from __future__ import annotations

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli
from gauss2d import distributed, pipeline
from gauss2d.errors import Gauss2dError

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default: runs/<config name>).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-host: HOST:PORT of process 0, the same for every process."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's rank, 0..num_processes-1.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Multi-host: let JAX detect the cluster (SLURM, Open MPI, Cloud TPU, Kubernetes)."
)
_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout", 300, "Multi-host: seconds to wait for all processes to join."
)


def default_workdir(config_path: str) -> str:
    """runs/default for configs/default.py, runs/kodak_smoke for configs/kodak.py:smoke."""
    stem = config_path.rsplit("/", 1)[-1].replace(".py", "").replace(":", "_")
    return f"runs/{stem or 'default'}"


def parse_flags(argv):
    """absl's parser, with config-override mistakes turned into one line.

    ml_collections raises AttributeError / KeyError / TypeError from inside
    flag parsing for an unknown key or a value of the wrong type; absl only
    catches its own flag errors, so these would end in a traceback.
    """
    try:
        return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        overrides = [a for a in argv[1:] if a.startswith("--config.")]
        print(
            f"error: invalid config override ({type(err).__name__}: {err}); no such key, or a value of "
            f"the wrong type, among {overrides}",
            file=sys.stderr,
        )
        sys.exit(2)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    workdir = _WORKDIR.value or default_workdir(flags.FLAGS["config"].config_filename)
    try:
        process, processes = distributed.initialize(
            _COORDINATOR.value,
            _NUM_PROCESSES.value,
            _PROCESS_ID.value,
            auto=_DISTRIBUTED.value,
            timeout_s=_TIMEOUT.value,
        )
    except Gauss2dError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    logging.info("config:\n%s", config)
    logging.info("devices: %s", jax.local_devices())
    where = f" (process {process} of {processes})" if processes > 1 else ""
    print(f"gauss2d: fitting into {workdir} on {pipeline.device_description()}{where}", flush=True)
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
        cli.exit_interrupted()


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)

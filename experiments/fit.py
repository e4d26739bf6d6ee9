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

import jax
from absl import app, flags, logging

from experiments import cli
from gauss2d import settings
from gauss2d.errors import Gauss2dError
from gauss2d.io import runrecord
from gauss2d.runner import dataset as runner
from gauss2d.runner import distributed
from gauss2d.train import densify

_CONFIG = cli.define_config("configs/default.py")
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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    workdir = _WORKDIR.value or cli.default_workdir(flags.FLAGS["config"].config_filename, "default")
    try:
        config = cli.load_config(_CONFIG)
        run = settings.resolve(config)  # the one place a config becomes typed settings
        process, processes = distributed.initialize(
            _COORDINATOR.value,
            _NUM_PROCESSES.value,
            _PROCESS_ID.value,
            auto=_DISTRIBUTED.value,
            timeout_s=_TIMEOUT.value,
        )
        logging.info("config:\n%s", config)
        logging.info("devices: %s", jax.local_devices())
        where = f" (process {process} of {processes})" if processes > 1 else ""
        print(f"gauss2d: fitting into {workdir} on {runrecord.device_description()}{where}", flush=True)
        runner.fit_dataset(run, workdir, densify.fit_function(run))
    except Gauss2dError as err:
        cli.fail(err)
    except KeyboardInterrupt:
        cli.exit_interrupted()


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)

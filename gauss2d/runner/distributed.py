"""Cutting a dataset into work: shape buckets, batches, process shards; joining a multi-host run; merging.

DESIGN.md section 4: beyond one host, ``jax.distributed`` with each process
taking its shard of the dataset; no home-made multiprocessing or job queue.
Images are independent, so a process fits its share on its own local
devices (``fit_batch`` shards each batch over them) and never talks to the
others while fitting. At the end every process contributes its result rows
through ``process_allgather`` (a collective over the processes, so the merge
does not need a shared filesystem) and process 0 writes results.json.

Batches hold images of one fitted shape (DESIGN.md section 4): portrait
images count as their transpose (the pipeline fits them transposed).

Nothing here reads flags: ``experiments/fit.py`` passes the flag values in.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
from collections.abc import Sequence
from typing import Any, TypeVar

import jax
import numpy as np
from PIL import Image

from gauss2d.errors import Gauss2dError, ImageError
from gauss2d.io import images as data

T = TypeVar("T")


def check_coordinator_address(address: str) -> None:
    """Refuses an address that is not HOST:PORT with a port in 1..65535."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise Gauss2dError(
            f"--coordinator_address={address!r} is invalid: expected HOST:PORT "
            "(process 0's address and a free port, e.g. 10.0.0.1:12345)"
        )


def check_flags(coordinator_address: str | None, num_processes: int | None, process_id: int | None) -> None:
    """Checks explicit multi-process settings before anything connects.

    Raises:
      Gauss2dError: naming the flag, when a value is missing or out of range.
    """
    if num_processes is not None and num_processes < 1:
        raise Gauss2dError(f"--num_processes={num_processes} is invalid: expected >= 1")
    if process_id is not None and process_id < 0:
        raise Gauss2dError(f"--process_id={process_id} is invalid: expected >= 0")
    if num_processes is not None and process_id is not None and process_id >= num_processes:
        raise Gauss2dError(
            f"--process_id={process_id} is invalid for --num_processes={num_processes}: "
            f"expected 0 <= process_id < {num_processes}"
        )
    if coordinator_address:
        check_coordinator_address(coordinator_address)


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto: bool = False,
    timeout_s: int = 300,
) -> tuple[int, int]:
    """Joins a multi-process run (``jax.distributed.initialize``) when asked to.

    Either give all three explicit settings (every process the same address
    and count, each its own id), or ``auto`` to let JAX detect the cluster
    (SLURM, Open MPI, Cloud TPU, Kubernetes; explicit values given as well
    override what it detects). With neither, nothing happens: one process.

    Args:
      coordinator_address: HOST:PORT of process 0 (it listens there).
      num_processes: how many processes take part.
      process_id: this process's rank, 0 <= process_id < num_processes.
      auto: use JAX's cluster auto-detection.
      timeout_s: how long to wait for the other processes to join.

    Returns:
      (process_index, process_count).

    Raises:
      Gauss2dError: missing or inconsistent settings, or the run could not be
        joined (coordinator unreachable, other processes missing).
    """
    check_flags(coordinator_address, num_processes, process_id)
    explicit = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    given = {k: v for k, v in explicit.items() if v not in (None, "")}
    if not given and not auto:
        return 0, 1
    if not auto:
        if given.get("num_processes") == 1 and "coordinator_address" not in given:
            return 0, 1  # a run of one needs no coordinator
        missing = [f"--{k}" for k in explicit if k not in given]
        if missing:
            raise Gauss2dError(
                f"a multi-process run needs {', '.join(missing)} as well as "
                f"{', '.join(f'--{k}={v}' for k, v in given.items())} "
                "(or --distributed to detect the cluster)"
            )
    try:
        jax.distributed.initialize(**given, initialization_timeout=int(timeout_s))
    except Exception as err:  # noqa: BLE001 (XLA raises several types; all mean "could not join")
        detail = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        where = f"the coordinator at {coordinator_address}" if coordinator_address else "the detected cluster"
        raise Gauss2dError(
            f"could not join {where} within {timeout_s}s as process {process_id} of {num_processes} "
            f"({detail}): is process 0 running, is the address reachable, do all processes pass the "
            "same --num_processes?"
        ) from None
    return jax.process_index(), jax.process_count()


@dataclasses.dataclass
class Job:
    """One image of the dataset, planned from its header (nothing decoded yet)."""

    index: int  # position in the dataset: results keep this order
    path: pathlib.Path
    shape: tuple[int, int] = (0, 0)  # (H, W) as fitted: downscaled, landscape
    error: str | None = None  # why the image cannot be fitted


def plan_job(
    index: int, path: pathlib.Path, downscale: int, svg_size: int = 0, svg_supersample: int = 4
) -> Job:
    """The fitted shape of an image from its header, or the error that makes it unusable.

    Only the header is read (every process plans every image, cheaply); a
    file Pillow cannot open goes through ``data.load_image`` for its message.
    """
    try:
        if path.suffix.lower() in data.svg.SVG_SUFFIXES:  # from the XML, not a raster
            width, height = data.image_size(path, svg_size=svg_size, svg_supersample=svg_supersample)
        else:
            with Image.open(path) as im:
                width, height = im.size
    except Exception:  # noqa: BLE001 (let the full loader name the problem, as it does for a fit)
        try:
            height, width = data.load_image(path).shape[:2]
        except ImageError as err:
            return Job(index, path, error=str(err))
    factor = int(downscale)
    if height // factor == 0 or width // factor == 0:
        return Job(
            index, path, error=f"image '{path}' ({width}x{height}) is smaller than data.downscale={factor}"
        )
    return Job(index, path, (min(height, width) // factor, max(height, width) // factor))


def group_batches(jobs: list[Job], size: int) -> list[list[Job]]:
    """Jobs grouped by fitted shape (first-seen order), each group cut into batches of ``size``."""
    groups: dict[tuple[int, int], list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.shape, []).append(job)
    return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]


def shard(items: Sequence[T], process_index: int, process_count: int) -> list[T]:
    """This process's share of ``items``: every ``process_count``-th one, from ``process_index``.

    Round robin over a list sorted by image shape gives each process an equal
    share of every shape bucket (so every process fills its batches), and
    the same items on a rerun with the same process count (so resume works).
    """
    if not 0 <= process_index < process_count:
        raise Gauss2dError(f"process index {process_index} is not in [0, {process_count})")
    return list(items[process_index::process_count])


def allgather_json(payload: Any) -> list[Any]:
    """Every process's JSON-able ``payload``, in process order (all processes must call it).

    The payload travels as utf-8 bytes padded to the longest one, through
    ``multihost_utils.process_allgather``.
    """
    if jax.process_count() == 1:
        return [payload]
    from jax.experimental import multihost_utils  # noqa: PLC0415 (multi-process runs only)

    blob = np.frombuffer(json.dumps(payload).encode("utf-8"), np.uint8)
    lengths = np.asarray(multihost_utils.process_allgather(np.asarray([blob.size], np.int32))).reshape(-1)
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[: blob.size] = blob
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    return [json.loads(gathered[i, : lengths[i]].tobytes().decode("utf-8")) for i in range(len(lengths))]


def merge_parts(parts: Sequence[dict], order: Sequence[str]) -> tuple[list[dict], list[dict]]:
    """Concatenates the processes' ``{"images": rows, "errors": errors}`` in dataset order.

    Args:
      parts: one dict per process.
      order: every image name in dataset order (rows are sorted by it).

    Returns:
      (rows, errors), each sorted by the image's position in ``order``.

    Raises:
      Gauss2dError: when two processes report the same image (the work was
        not split consistently, e.g. processes saw different folders).
    """
    position = {name: i for i, name in enumerate(order)}
    rows = [r for p in parts for r in p.get("images", [])]
    errors = [e for p in parts for e in p.get("errors", [])]
    owners = collections.Counter(
        name for p in parts for name in {x["name"] for x in [*p.get("images", []), *p.get("errors", [])]}
    )
    duplicates = sorted(name for name, count in owners.items() if count > 1)
    if duplicates:
        raise Gauss2dError(
            f"images {duplicates} were fitted by more than one process: do all processes see the same "
            "data.dir and pass the same --num_processes?"
        )
    key = lambda item: (position.get(item["name"], len(position)), item["name"])  # noqa: E731
    return sorted(rows, key=key), sorted(errors, key=key)

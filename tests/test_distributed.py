"""Several processes: flag checks, sharing the work, merging, and a real two-process run on localhost."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from gauss2d.errors import Gauss2dError
from gauss2d.io import images as data
from gauss2d.runner import distributed


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            dict(coordinator_address="127.0.0.1:1234", num_processes=2, process_id=2),
            "--process_id=2 is invalid",
        ),
        (dict(num_processes=2, process_id=0), "needs --coordinator_address"),
        (dict(coordinator_address="127.0.0.1:1234", num_processes=2), "needs --process_id"),
        (dict(coordinator_address="localhost", num_processes=2, process_id=0), "expected HOST:PORT"),
        (dict(coordinator_address="127.0.0.1:1", num_processes=0, process_id=0), "--num_processes=0"),
    ],
)
def test_inconsistent_settings_are_refused_before_connecting(kwargs, message):
    with pytest.raises(Gauss2dError, match=message):
        distributed.initialize(**kwargs)


def test_no_settings_or_one_process_means_a_single_process_run():
    assert distributed.initialize() == (0, 1)
    assert distributed.initialize(num_processes=1, process_id=0) == (0, 1)


def test_every_image_goes_to_exactly_one_process_with_an_even_share_of_each_shape():
    jobs = [distributed.Job(i, None, shape) for i, shape in enumerate([(2, 3)] * 5 + [(4, 4)] * 4)]
    shares = [distributed.shard(jobs, p, 3) for p in range(3)]
    assert sorted(j.index for s in shares for j in s) == list(range(9))
    for share in shares:
        assert sum(j.shape == (4, 4) for j in share) in (1, 2) and sum(j.shape == (2, 3) for j in share) in (
            1,
            2,
        )
    with pytest.raises(Gauss2dError, match="process index 3"):
        distributed.shard(jobs, 3, 3)


def test_batches_group_one_shape_each_and_keep_order():
    jobs = [distributed.Job(i, None, s) for i, s in enumerate([(2, 3), (4, 4), (2, 3), (2, 3), (4, 4)])]
    batches = distributed.group_batches(jobs, 2)
    assert [[j.index for j in b] for b in batches] == [[0, 2], [3], [1, 4]]


def test_merge_orders_rows_by_dataset_and_refuses_an_image_fitted_twice():
    parts = [
        {"images": [{"name": "c"}, {"name": "a"}], "errors": []},
        {"images": [{"name": "b"}], "errors": [{"name": "d", "error": "x"}]},
    ]
    rows, errors = distributed.merge_parts(parts, ["a", "b", "c", "d"])
    assert [r["name"] for r in rows] == ["a", "b", "c"] and errors == [{"name": "d", "error": "x"}]
    with pytest.raises(Gauss2dError, match=r"\['a'\] were fitted by more than one process"):
        distributed.merge_parts([parts[0], {"images": [{"name": "a"}]}], ["a", "b", "c"])


def test_allgather_of_one_process_is_its_payload():
    assert distributed.allgather_json({"x": [1, 2]}) == [{"x": [1, 2]}]


def run_fit(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "experiments.fit", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--num_processes=2", "--process_id=0"], "needs --coordinator_address"),
        (
            ["--coordinator_address=127.0.0.1:9", "--num_processes=2", "--process_id=5"],
            "--process_id=5 is invalid",
        ),
    ],
)
def test_cli_mismatched_flags_give_one_line_and_no_traceback(args, message, tmp_path):
    proc = run_fit("--config=configs/default.py:smoke", *args, f"--workdir={tmp_path}")
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))  # loopback only
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_on_localhost_share_a_folder_and_process_0_merges(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    sample = data.load_image(data.sample_image_path())
    for i, name in enumerate(["p", "q", "r"]):
        Image.fromarray((sample[8 * i : 8 * i + 24, 40:72] * 255).astype(np.uint8)).save(
            folder / f"{name}.png"
        )
    workdir = tmp_path / "run"
    args = [
        "--config=configs/default.py:smoke",
        f"--config.data.dir={folder}",
        "--config.model.init=random",
        "--config.model.num_points=50",
        "--config.optim.iterations=20",
        "--config.fps_repeats=1",
        f"--workdir={workdir}",
        f"--coordinator_address=127.0.0.1:{free_port()}",
        "--num_processes=2",
        "--distributed_timeout=120",
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "experiments.fit", *args, f"--process_id={i}"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    assert "(process 1 of 2)" in outputs[1][0]
    results = json.loads((workdir / "results.json").read_text())
    assert [r["name"] for r in results["images"]] == ["p", "q", "r"] and results["process_count"] == 2
    parts = [json.loads((workdir / f"results.process-{i:05d}-of-00002.json").read_text()) for i in range(2)]
    shares = [sorted(r["name"] for r in part["images"]) for part in parts]
    assert sorted(shares[0] + shares[1]) == ["p", "q", "r"] and min(map(len, shares)) == 1
    assert all((workdir / n / "params.npz").exists() for n in "pqr")
    assert "wrote" in outputs[0][0] and "wrote" not in outputs[1][0]  # one process writes results.json

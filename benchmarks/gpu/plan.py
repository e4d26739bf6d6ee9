"""What benchmarks.gpu_check measures, at which sizes, and the time budget that decides what runs."""

from __future__ import annotations

import pathlib
import time

import numpy as np

from benchmarks import paper_parity
from gauss2d.io import images as data

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository
GPU_BUDGET_S = 510  # 8.5 min: the issue allows 9 on one H200; the rest is start-up and writing
SMOKE_BUDGET_S = 120

# Sizes per mode. "full" is the GPU's; "smoke" runs the same code on CPU in seconds.
FULL = dict(
    pytest_args=[],
    speed=dict(height=512, width=768, counts=(10000, 70000), batches=(1,), repeats=5, iters=10, steps=10),
    knobs=dict(height=512, width=768, n=70000, repeats=5, iters=10),
    fit_speed=dict(height=512, width=768, counts=(10000, 70000), backends=("xla", "pallas"), repeats=10),
    batch=dict(
        downscale=1, num_points=70000, steps=10, repeats=3, runs=((1, "xla"), (8, "xla"), (8, "pallas"))
    ),
    parity=dict(images=tuple(paper_parity.PUBLISHED), downscale=1, num_points=50000, steps=5000),
    fast=dict(image="kodim23", downscale=1, steps=2000),
)
SMOKE = dict(
    pytest_args=["-k", "bad_config"],
    speed=dict(height=32, width=48, counts=(100,), batches=(1,), repeats=1, iters=1, steps=1),
    knobs=dict(height=32, width=48, n=100, repeats=1, iters=1),
    # One backend where the GPU run has two: each compile is seconds of CI's minute.
    fit_speed=dict(height=32, width=48, counts=(100,), backends=("pallas",), repeats=1),
    batch=dict(downscale=16, num_points=100, steps=2, repeats=1, runs=((2, "pallas"),)),
    parity=dict(images=("kodim01",), downscale=16, num_points=200, steps=10),
    fast=dict(image="kodim23", downscale=16, steps=10),
)
# PallasConfig candidates (benchmarks/gpu_registers.py: backward registers 218 / 123 / 128, no spills).
KNOBS = ({}, {"chunk": 8}, {"num_warps": 8})
# Cost estimates in seconds (compile + run) on one H200, from the sizes above;
# the smoke mode scales them down. They only decide what to skip.
ESTIMATE_S = dict(
    pallas_tests=120, speed_row=60, knob_row=15, fit_speed_row=20, batch_run=40, parity_image=60, fast=60
)


SECTIONS = (
    "pallas_tests",
    "render_speed",
    "pallas_knobs",
    "fit_speed",
    "batch_throughput",
    "paper_parity",
    "kodak_fast",
)


class Budget:
    """Seconds left before the deadline; items that would overrun are skipped."""

    def __init__(self, seconds: float, scale: float = 1.0):
        self.deadline = time.monotonic() + seconds
        self.scale = scale

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fits(self, item: str) -> bool:
        return self.left() >= ESTIMATE_S[item] * self.scale


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def kodak_image(kodak: pathlib.Path, name: str, downscale: int) -> tuple[np.ndarray, str]:
    """A landscape Kodak image, downscaled; the sample (kodim23 at half size) if the file is missing."""
    path = kodak / f"{name}.png"
    if path.exists():
        image, source = data.to_landscape(data.load_image(path))[0], name
    else:
        image, source = data.load_image(data.sample_image_path()), f"sample (no {path})"
        downscale = max(1, downscale // 2)
    if downscale > 1:
        image = data.downscale(image, downscale)
    return np.ascontiguousarray(image), source

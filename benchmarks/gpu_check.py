"""Everything the GPU owes, measured in one call (issue #17).

    python -m benchmarks.gpu_check --out=runs/gpu_check            # on a GPU: < 9 min on one H200
    python -m benchmarks.gpu_check --out=runs/gpu_check --smoke    # the same code on CPU, tiny sizes (CI)

Sections, in this order (each prints progress as it goes):

1. ``pallas_tests``: tests/test_pallas.py and tests/test_alpha_pallas.py,
   compiled on the GPU (interpret mode on CPU), in a child pytest.
2. ``render_speed``: render FPS and training-step ms, xla vs pallas
   (``benchmarks.render_speed``), 768x512, 10k / 70k Gaussians, batch 1.
3. ``pallas_knobs``: ms per render forward + backward at 768x512 with 70k
   Gaussians for the PallasConfig candidates that benchmarks/gpu_registers.py
   found below the register ceiling without spills (the defaults, chunk 8,
   8 warps): the timing that decides the defaults.
4. ``fit_speed``: ms per jitted training step (``benchmarks.fit_speed``),
   xla and pallas, 768x512, 10k / 70k Gaussians.
5. ``batch_throughput``: images/s fitting a batch (``benchmarks.batch_throughput``),
   Kodak size, 70k Gaussians, batch 1 and 8 (xla), 8 (pallas).
6. ``paper_parity``: configs/kodak.py on kodim01-03 at the published point
   (50000 Gaussians, 5000 steps) against GaussianImage's 37.01 / 39.83 / 43.27 dB.
7. ``kodak_fast``: a short configs/kodak_fast.py fit of kodim23 at full size.
8. ``video_decode``: frames per second decoding a ``.g2v`` file at 768x512,
   render included, xla and pallas (``benchmarks/gpu/video_decode.py``, issue 24).

Budget: every item declares a cost estimate (JAX compiles included: each new
shape or backend compiles for seconds); an item that would not fit in what
is left of ``--budget_s`` is skipped and recorded as such, and the fits of 6
and 7 stop at the deadline (their last PSNR and step are recorded). Nothing
is timed before its program is compiled and warmed up.

Writes ``<out>/gpu_check.json`` (every figure, the machine, jax, commit, the
command) and ``<out>/gpu_check.md`` (one table), atomically. The Kodak
images are read from ``--kodak`` (default: configs/kodak.py's lookup:
$GAUSS2D_KODAK_DIR, data/kodak, ../shared/data/kodak); images not found
there are replaced by the built-in sample and marked so. docs/pallas.md says how to run it on the lent GPU.

The pieces live in benchmarks/gpu/: plan (sizes, estimates, the budget),
kernels (sections 1-4), fits (5-7), report (the table, atomic writes); this
module runs them in order.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import sys
import time
import traceback

import jax

from benchmarks.gpu import fits, kernels, video_decode
from benchmarks.gpu import report as report_mod
from benchmarks.gpu.plan import FULL, GPU_BUDGET_S, KNOBS, SECTIONS, SMOKE, SMOKE_BUDGET_S, Budget, log
from configs import kodak as kodak_config
from gauss2d.io import runrecord

SECTIONS = (*SECTIONS, video_decode.SECTION)
report_mod.ROWS.setdefault(video_decode.SECTION, video_decode.row)  # its table row, beside report.py's

# Names the tests and other scripts read from here.
__all__ = ["KNOBS", "SECTIONS", "Budget", "main", "run"]


def run(
    out: pathlib.Path, smoke: bool, budget_s: float, kodak: pathlib.Path, sections: list[str], command: str
) -> dict:
    """Runs the sections in order; returns the report (also written to ``out``)."""
    mode = SMOKE if smoke else FULL
    budget = Budget(budget_s, scale=0.1 if smoke else 1.0)
    start = time.perf_counter()
    steps = {
        "pallas_tests": lambda: (
            kernels.pallas_tests(mode, budget) if budget.fits("pallas_tests") else {"skipped": ["all"]}
        ),
        "render_speed": lambda: kernels.speed(mode, budget),
        "pallas_knobs": lambda: kernels.knobs(mode, budget),
        "fit_speed": lambda: kernels.step_speed(mode, budget),
        "batch_throughput": lambda: fits.batch(mode, budget, kodak),
        "paper_parity": lambda: fits.parity(mode, budget, kodak),
        "kodak_fast": lambda: fits.fast(mode, budget, kodak),
        video_decode.SECTION: lambda: video_decode.run(
            video_decode.SMOKE if smoke else video_decode.FULL, budget
        ),
    }
    report = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.node() or "unknown",
            "device": runrecord.device_description(),
            "jax": jax.__version__,
            "commit": runrecord.git_commit(),
            "command": command,
            "smoke": smoke,
            "budget_s": budget_s,
        },
        "sections": {},
    }
    for name in sections:
        log(f"{name}: start ({budget.left():.0f} s of the budget left)")
        t0 = time.perf_counter()
        try:
            result = steps[name]()
        except Exception:  # noqa: BLE001 (one failed section must not lose the others' figures)
            result = {"error": traceback.format_exc()[-3000:]}
            log(f"{name}: FAILED\n{result['error']}")
        result.setdefault("seconds", time.perf_counter() - t0)
        report["sections"][name] = result
        report["meta"]["wall_s"] = time.perf_counter() - start
        report_mod.write_atomic(out / "gpu_check.json", json.dumps(report, indent=1))  # after every section
        log(f"{name}: done in {result['seconds']:.0f} s")
    report_mod.write_atomic(out / "gpu_check.md", report_mod.markdown(report))
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device (CI)")
    parser.add_argument("--budget_s", type=float, default=None, help="default 510 (GPU) / 120 (smoke)")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument(
        "--kodak",
        default=kodak_config.default_kodak_dir(),
        help="folder of kodimNN.png (default: $GAUSS2D_KODAK_DIR, data/kodak, ../shared/data/kodak)",
    )
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    if unknown := sorted(set(sections) - set(SECTIONS)):
        parser.error(f"unknown sections {unknown}; expected some of {list(SECTIONS)}")
    if not args.smoke and jax.default_backend() != "gpu":
        parser.error(
            f"the full check needs a GPU (default backend: {jax.default_backend()}); use --smoke on CPU"
        )
    budget = args.budget_s or (SMOKE_BUDGET_S if args.smoke else GPU_BUDGET_S)
    command = "python -m benchmarks.gpu_check " + " ".join(argv if argv is not None else sys.argv[1:])
    log(f"{runrecord.device_description()}, jax {jax.__version__}, budget {budget:.0f} s, out {args.out}")
    report = run(pathlib.Path(args.out), args.smoke, budget, pathlib.Path(args.kodak), sections, command)
    print(report_mod.markdown(report))
    failed = [n for n, s in report["sections"].items() if s.get("error") or s.get("ok") is False]
    if failed:
        raise SystemExit(f"gpu_check: section(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

"""Registers and spills of the Pallas kernels per PallasConfig, without a GPU (issue #17).

    python -m benchmarks.gpu_registers                      # the default sweep
    python -m benchmarks.gpu_registers --configs='{"chunk": 8}' '{"num_warps": 8}'
    python -m benchmarks.gpu_registers --json=runs/gpu_registers.json
    python -m benchmarks.gpu_registers --program=alpha_vmapped_forward_backward   # the alpha kernels

Each config's forward + backward program is compiled by XLA's GPU compiler
for a compile-only H200 (``benchmarks.gpu_compile``: the CUDA plugin wheels
in a gitignored cache, no driver), with the PTX dumped
(``--xla_dump_to``); ``ptxas -v -arch=sm_90a`` from the
``nvidia-cuda-nvcc-cu12`` wheel then reports, per kernel, registers per
thread, spill stores / loads and the stack frame. Prints a markdown table
for benchmarks/RESULTS.md ("## gpu_registers").

What the figures mean: 255 registers per thread is the hardware's ceiling;
a kernel there is usually one step from spilling (local-memory traffic),
and registers x threads per program bound how many programs share an SM.
They say nothing about speed by themselves: that needs GPU timings
(``benchmarks.gpu_check``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import tempfile

from benchmarks import gpu_compile

# The sweep: the defaults first, then one knob at a time.
SWEEP = (
    {},
    {"chunk": 8},
    {"chunk": 32},
    {"num_warps": 8},
    {"num_warps": 8, "chunk": 32},
    {"num_warps": 2},
    {"tile": 32},
    {"tile": 32, "chunk": 8, "num_warps": 8},
)
_STATS = re.compile(
    r"Compiling entry function '(?P<name>\w+)'.*?"
    r"(?P<stack>\d+) bytes stack frame, (?P<stores>\d+) bytes spill stores, "
    r"(?P<loads>\d+) bytes spill loads.*?"
    r"Used (?P<regs>\d+) registers",
    re.S,
)


def ptxas_path() -> pathlib.Path:
    """ptxas in the plugin directory: nvidia/cuda_nvcc/ (CUDA 12 wheels) or nvidia/cu13/ (CUDA 13)."""
    root = gpu_compile.plugin_dir() / "nvidia"
    found = [root / sub / "bin" / "ptxas" for sub in ("cuda_nvcc", "cu13")]
    return next((path for path in found if path.exists()), found[0])


def ptxas_stats(ptx_file: pathlib.Path, arch: str = "sm_90a") -> dict[str, dict[str, int]]:
    """Kernel name -> registers, spill_stores, spill_loads, stack (bytes) for every entry of ``ptx_file``."""
    proc = subprocess.run(
        [str(ptxas_path()), "-v", f"-arch={arch}", str(ptx_file), "-o", "/dev/null"],
        capture_output=True,
        text=True,
        check=True,
    )
    # ptxas prints one block per entry; split so a pattern never spans two.
    blocks = re.split(r"(?=ptxas info\s+: Compiling entry function)", proc.stderr)
    out = {}
    for block in blocks:
        if m := _STATS.search(block):
            out[m["name"]] = {
                "registers": int(m["regs"]),
                "spill_stores": int(m["stores"]),
                "spill_loads": int(m["loads"]),
                "stack": int(m["stack"]),
            }
    return out


def measure(config: dict, program: str = "render_forward_backward") -> dict:
    """The kernels' ptxas figures for one PallasConfig (fields as a dict) in one ``gpu_compile`` program."""
    with tempfile.TemporaryDirectory() as tmp:
        dump = pathlib.Path(tmp)
        report = gpu_compile.compile_in_child([program], config, dump_dir=dump)
        error = report["programs"][program]["error"]
        if error:
            return {"config": config, "program": program, "error": error, "kernels": {}}
        kernels = {}
        for ptx in sorted(dump.glob("*.ptx")):
            text = ptx.read_text()
            if any(f".entry {k}(" in text for k in gpu_compile.KERNELS):
                stats = ptxas_stats(ptx)
                kernels.update({k: v for k, v in stats.items() if k in gpu_compile.KERNELS})
        return {"config": config, "program": program, "error": None, "kernels": kernels}


def ptxas_version() -> str:
    proc = subprocess.run([str(ptxas_path()), "--version"], capture_output=True, text=True, check=True)
    return proc.stdout.strip().splitlines()[-1]


def format_rows(results: list[dict]) -> str:
    """Markdown: one row per (config, kernel)."""
    import dataclasses  # noqa: PLC0415

    from gauss2d.render import kernels as pallas  # noqa: PLC0415
    from gauss2d.render.kernels import alpha as alpha_pallas  # noqa: PLC0415

    lines = [
        "| tile | chunk | num_warps | kernel | registers / thread | spill stores B | spill loads B "
        "| stack B |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        defaults = alpha_pallas.DEFAULT_CONFIG if r["program"].startswith("alpha_") else pallas.DEFAULT_CONFIG
        c = dataclasses.replace(defaults, **r["config"])
        if r["error"]:
            lines.append(f"| {c.tile} | {c.chunk} | {c.num_warps} | (failed) | {r['error'][:80]} | | | |")
        for name, s in sorted(r["kernels"].items(), reverse=True):
            short = name.removeprefix("gauss2d_render_").removeprefix("gauss2d_")  # fwd, bwd, alpha_fwd, ...
            lines.append(
                f"| {c.tile} | {c.chunk} | {c.num_warps} | {short} | "
                f"{s['registers']} | {s['spill_stores']} | {s['spill_loads']} | {s['stack']} |"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="*", help="PallasConfig fields as JSON (default: the sweep)")
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument(
        "--program",
        default="render_forward_backward",
        choices=["render_forward_backward", "alpha_vmapped_forward_backward"],
        help="whose kernels: the sum model's or the alpha model's",
    )
    args = parser.parse_args(argv)
    configs = [json.loads(c) for c in args.configs] if args.configs else list(SWEEP)
    supported, reason = gpu_compile.register_report_supported()
    if not supported:
        raise SystemExit(f"gpu_registers: {reason}; run it with jax 0.10 or 0.11")
    try:
        gpu_compile.ensure_plugin()
    except gpu_compile.PluginUnavailable as e:
        raise SystemExit(f"gpu_registers: {e}") from None
    print(f"target: {gpu_compile.DEVICE_KIND} (compile-only, sm_90a); {ptxas_version()}", flush=True)
    results = []
    for config in configs:
        results.append(measure(config, args.program))
        print("\n".join(format_rows(results[-1:]).splitlines()[2:]), flush=True)  # progress
    print()
    print(format_rows(results))
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        report = {"ptxas": ptxas_version(), "results": results}
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

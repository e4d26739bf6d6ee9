"""The GPU check's outputs: the markdown table and atomic writes."""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Callable

Row = tuple[str, str, str]  # item, measured, reference / target


def _render_speed(r: dict) -> Row:
    fps = f"render FPS xla {r['fps_xla']:.0f} / pallas {r['fps_pallas']:.0f}"
    step = f"step ms xla {r['step_ms_xla']:.2f} / pallas {r['step_ms_pallas']:.2f}"
    target = "N=70000: >= 5000 FPS; <= 1.5 ms, pallas >= 5x xla"
    return f"{r['size']} N={r['n']} B={r['batch']}", f"{fps}; {step}", target


def _pallas_knobs(r: dict) -> Row:
    item = f"{r['size']} N={r['n']} tile={r['tile']} chunk={r['chunk']} num_warps={r['num_warps']}"
    return item, f"{r['fwd_bwd_ms']:.3f} ms render fwd+bwd", "GPU: the fastest should be the default"


def _batch_throughput(r: dict) -> Row:
    measured = f"{r['ms_per_batched_step']:.2f} ms / batched step; {r['images_per_s']:.4f} images/s"
    return f"{r['size']} N={r['n']} B={r['batch']} {r['backend']}", measured, ""


def _paper_parity(r: dict) -> Row:
    cut = " (stopped: budget)" if r["stopped_by_budget"] else ""
    measured = f"{r['psnr']:.2f} dB at step {r['steps']}{cut}"
    return f"{r['source']} {r['size']}", measured, f"{r['published']:.2f} dB at 5000"


def _kodak_fast(r: dict) -> Row:
    rate = r["steps"] / r["seconds"] if r["seconds"] else 0.0
    measured = f"{r['psnr']:.2f} dB at step {r['steps']}; {rate:.1f} steps/s incl. compile"
    return f"{r['source']} {r['size']} N={r['n']}", measured, ""


# One table row per result row, per section, in the table's order.
ROWS: dict[str, Callable[[dict], Row]] = {
    "pallas_tests": lambda r: (r["command"], r["summary"], "all pass"),
    "render_speed": _render_speed,
    "pallas_knobs": _pallas_knobs,
    "fit_speed": lambda r: (f"{r['size']} N={r['n']} {r['backend']}", f"{r['step_ms']:.2f} ms / step", ""),
    "batch_throughput": _batch_throughput,
    "paper_parity": _paper_parity,
    "kodak_fast": _kodak_fast,
}


def markdown(report: dict) -> str:
    """One table: section, what, figure(s), reference or target; failures and skips first."""
    m = report["meta"]
    lines = [
        f"gpu_check on {m['machine']} ({m['device']}), jax {m['jax']}, commit {m['commit']}, {m['date']}; "
        f"`{m['command']}`; {m['wall_s']:.0f} s",
        "",
        "| section | item | measured | reference / target |",
        "|---|---|---|---|",
    ]
    s = report["sections"]

    def add(section, item, measured, ref=""):
        lines.append(f"| {section} | {item} | {measured} | {ref} |")

    for name, sec in s.items():
        if sec.get("error"):
            add(name, "FAILED", sec["error"].splitlines()[-1][:120])
        for item in sec.get("skipped", []):
            add(name, item, "skipped: over the time budget")
    for name, row in ROWS.items():
        for r in s.get(name, {}).get("rows", []):
            add(name, *row(r))
    return "\n".join(lines) + "\n"


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Writes ``text`` to ``path`` via a temporary file in the same folder: a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
    os.replace(f.name, path)

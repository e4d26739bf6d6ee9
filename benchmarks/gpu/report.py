"""The GPU check's outputs: the markdown table and atomic writes."""

from __future__ import annotations

import os
import pathlib
import tempfile


def markdown(report: dict) -> str:
    """One table: section, what, figure(s), reference or target."""
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
    for r in s.get("pallas_tests", {}).get("rows", []):
        add("pallas_tests", r["command"], r["summary"], "all pass")
    for r in s.get("render_speed", {}).get("rows", []):
        item = f"{r['size']} N={r['n']} B={r['batch']}"
        fps = f"render FPS xla {r['fps_xla']:.0f} / pallas {r['fps_pallas']:.0f}"
        step = f"step ms xla {r['step_ms_xla']:.2f} / pallas {r['step_ms_pallas']:.2f}"
        add("render_speed", item, f"{fps}; {step}", "N=70000: >= 5000 FPS; <= 1.5 ms, pallas >= 5x xla")
    for r in s.get("pallas_knobs", {}).get("rows", []):
        item = f"{r['size']} N={r['n']} tile={r['tile']} chunk={r['chunk']} num_warps={r['num_warps']}"
        add(
            "pallas_knobs",
            item,
            f"{r['fwd_bwd_ms']:.3f} ms render fwd+bwd",
            "GPU: the fastest should be the default",
        )
    for r in s.get("fit_speed", {}).get("rows", []):
        add("fit_speed", f"{r['size']} N={r['n']} {r['backend']}", f"{r['step_ms']:.2f} ms / step")
    for r in s.get("batch_throughput", {}).get("rows", []):
        item = f"{r['size']} N={r['n']} B={r['batch']} {r['backend']}"
        add(
            "batch_throughput",
            item,
            f"{r['ms_per_batched_step']:.2f} ms / batched step; {r['images_per_s']:.4f} images/s",
        )
    for r in s.get("paper_parity", {}).get("rows", []):
        cut = " (stopped: budget)" if r["stopped_by_budget"] else ""
        add(
            "paper_parity",
            f"{r['source']} {r['size']}",
            f"{r['psnr']:.2f} dB at step {r['steps']}{cut}",
            f"{r['published']:.2f} dB at 5000",
        )
    for r in s.get("kodak_fast", {}).get("rows", []):
        rate = r["steps"] / r["seconds"] if r["seconds"] else 0.0
        add(
            "kodak_fast",
            f"{r['source']} {r['size']} N={r['n']}",
            f"{r['psnr']:.2f} dB at step {r['steps']}; {rate:.1f} steps/s incl. compile",
        )
    return "\n".join(lines) + "\n"


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Writes ``text`` to ``path`` via a temporary file in the same folder: a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
    os.replace(f.name, path)

"""The record of a run: which code and device made a result, written atomically, and progress lines.

Every binary and benchmark stamps its results with ``git_commit`` and
``device_description`` and writes them with ``write_json`` (atomic: no
half-written result survives a crash); ``Progress`` prints the one line per
training chunk that the binaries show.
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import jax

from gauss2d.io import checkpoint


def format_seconds(seconds: float) -> str:
    """3725 -> '1h02m05s'."""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def git_commit() -> str:
    """The commit of the code that produced a result ("unknown" outside git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=pathlib.Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_description() -> str:
    """'cpu: cpu x1', the accelerator's kind and count; '... per process, 2 processes' on several."""
    devices = jax.local_devices()
    kind = getattr(devices[0], "device_kind", devices[0].platform)
    text = f"{devices[0].platform}: {kind} x{len(devices)}"
    return text if jax.process_count() == 1 else f"{text} per process, {jax.process_count()} processes"


def write_json(path: pathlib.Path, payload: Any) -> None:
    """Writes JSON atomically (no half-written result survives a crash)."""
    with checkpoint.atomic_write(path) as f:
        f.write(checkpoint.dumps_strict(payload, indent=2, sort_keys=False).encode())  # no NaN/Infinity


def select(settings: Any, dotted: str) -> Any:
    """``settings.a.b`` for 'a.b', as plain values (what a result records it was made with).

    ``settings`` is a ``gauss2d.settings.Settings`` (any dataclass) or its
    ``as_dict()``; a section comes back as a dict.
    """
    value = settings
    for part in dotted.split("."):
        value = value[part] if isinstance(value, Mapping) else getattr(value, part)
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


class Progress:
    """Prints one progress line per chunk: step, loss, PSNR, steps/s, ETA."""

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream or sys.stdout

    def __call__(self, info: Mapping) -> None:
        line = (
            f"{self.label} step {info['step']:>6d}/{info['iterations']}  loss {info['loss']:.5f}  "
            f"psnr {info['psnr']:6.2f} dB  {info['steps_per_second']:7.1f} steps/s  "
            f"ETA {format_seconds(info['eta_seconds'])}"
        )
        print(line, file=self.stream, flush=True)

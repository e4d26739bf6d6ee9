"""Step time of two checkouts, measured in one run: ``benchmarks.fit_speed`` in each, in alternation.

    python -m benchmarks.ab_speed --old ../base --new . --rounds 3
    python -m benchmarks.ab_speed --old ../base --new . --rounds 1 --quick   # seconds

A timing on a shared machine drifts with the load, so the two trees are
measured A, B, A, B, ... (each a fresh ``python -m benchmarks.fit_speed
--xla-only`` process with PYTHONPATH set to its tree) and compared by the
median over rounds of each size's ms / step. The speed ratio new / old is
old ms / new ms: above 1, the new tree is faster.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys

# A table row of benchmarks.fit_speed: | 256x256 | 2000 | xla | 65536 | 12.3 | |
ROW = re.compile(r"^\| (\d+x\d+) \| (\d+) \| xla \| \d+ \| ([\d.]+) \|")


def measure(tree: pathlib.Path, quick: bool, repeats: int) -> dict[str, float]:
    """{size: ms / step} from one ``benchmarks.fit_speed`` process run in ``tree``."""
    cmd = [sys.executable, "-m", "benchmarks.fit_speed", "--xla-only", "--repeats", str(repeats)]
    cmd += ["--quick"] if quick else []
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True).stdout
    rows = {m.group(1) + f" N={m.group(2)}": float(m.group(3)) for m in map(ROW.match, out.splitlines()) if m}
    if not rows:
        raise SystemExit(f"error: no timing rows from {tree}:\n{out}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old", required=True, type=pathlib.Path, help="the checkout measured first")
    parser.add_argument("--new", required=True, type=pathlib.Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per size and process")
    parser.add_argument("--quick", action="store_true", help="fit_speed's small size only")
    args = parser.parse_args()
    times: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    for k in range(args.rounds):
        for name in ("old", "new"):
            for size, ms in measure(getattr(args, name).resolve(), args.quick, args.repeats).items():
                times[name].setdefault(size, []).append(ms)
                print(f"round {k + 1} {name}: {size} {ms:.2f} ms / step", flush=True)
    print("| size | old ms / step | new ms / step | speed new / old |")
    print("|---|---|---|---|")
    for size in times["old"]:
        old, new = statistics.median(times["old"][size]), statistics.median(times["new"][size])
        print(f"| {size} | {old:.2f} | {new:.2f} | {old / new:.3f} |")


if __name__ == "__main__":
    main()

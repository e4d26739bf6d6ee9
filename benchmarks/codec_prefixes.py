"""Prefix PSNRs of progressive v3 files with and without prefix-weighted fine-tuning.

    python -m benchmarks.codec_prefixes                                  # kodim02, 750 Gaussians, CPU
    python -m benchmarks.codec_prefixes --images=kodim01,kodim03 --weights=0,0.1,0.3
    python -m benchmarks.codec_prefixes --quick                          # the built-in sample, tiny

Per image: one fit (``configs/rd_kodak.py:cpu``'s recipe at 384x256), then
for each ``codec.prefix_weight`` the same rate-aware fine-tuning into a
4-layer v3 file (``compress_image`` with ``codec.version=3,
codec.layers=4``, no step search, so only the weight differs), and the
decoded PSNR and bytes of every prefix of whole layers (``decode(data,
layers=k)``). Prints a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

import jax
import jax.numpy as jnp

from benchmarks.cpu_images import cpu_images
from configs import rd_kodak
from gauss2d import compress, metrics
from gauss2d.codec import decode
from gauss2d.errors import Gauss2dError
from gauss2d.io import runrecord
from gauss2d.render import render_clamped
from gauss2d.settings import resolve
from gauss2d.train import fit

LAYERS = 4


def prefix_points(blob: bytes, target) -> list[tuple[int, float]]:
    """(bytes read, PSNR) of each prefix of whole layers: the file cut after layer k."""
    h, w = target.shape[:2]
    full = decode(blob)
    out = []
    for k in range(1, full.total_layers + 1):
        # The shortest cut that still holds k layers: bisect on the length.
        lo, hi = 1, len(blob)
        while lo < hi:
            mid = (lo + hi) // 2
            try:
                enough = decode(blob[:mid]).layers >= k
            except Exception:  # too short for the header and one layer
                enough = False
            lo, hi = (lo, mid) if enough else (mid + 1, hi)
        d = decode(blob[:lo])
        psnr = float(metrics.psnr(render_clamped(d.params, h, w), jnp.asarray(target)))
        out.append((lo, psnr))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="kodim02")
    parser.add_argument("--points", type=int, default=750)
    parser.add_argument("--lmbda", type=float, default=0.003, help=":cpu's rate weight at 750 Gaussians")
    parser.add_argument("--weights", default="0,0.2")
    parser.add_argument("--qat_steps", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    config = rd_kodak.get_config("cpu")
    with config.unlocked():
        config.model.num_points = args.points
        config.codec.lmbda = args.lmbda
        config.codec.qat_steps = args.qat_steps
        config.codec.step_search = False
        config.codec.version = 3
        config.codec.layers = LAYERS
        if args.quick:
            config.model.num_points, config.optim.iterations, config.codec.qat_steps = 80, 30, 20
            config.log_every = 10
    run = resolve(config)
    try:
        images = cpu_images(args.images, args.quick)
    except Gauss2dError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    weights = [float(w) for w in args.weights.split(",")]
    rows = []
    print("| image | prefix_weight | file B | prefix 1 (B, dB) | prefix 2 | prefix 3 | all 4 |")
    print("|---|---|---|---|---|---|---|")
    for name, target in images.items():
        fitted = fit.fit_image(target, run, jax.random.key(run.seed))
        for weight in weights:
            tuned = run.replace(codec=dataclasses.replace(run.codec, prefix_weight=weight))
            result = compress.compress_image(target, tuned, jax.random.key(run.seed), params=fitted.params)
            points = prefix_points(result.data, target)
            rows.append(
                {"image": name, "prefix_weight": weight, "bytes": len(result.data), "prefixes": points}
            )
            cells = " | ".join(f"{b}, {p:.2f}" for b, p in points)
            print(f"| {name} | {weight:g} | {len(result.data)} | {cells} |", flush=True)
    if args.json:
        runrecord.write_json(pathlib.Path(args.json), {"rows": rows, "commit": runrecord.git_commit()})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The public render in a user's own loop: jit, grad and vmap at full speed (issue 16).

    python -m benchmarks.own_loop_speed            # the full table (slow: the dense reference)
    python -m benchmarks.own_loop_speed --quick    # smaller sizes, fewer repeats

In one run, on random Gaussians (means uniform over the image, per-axis
sigma uniform in 1-6 px, random rotation, colours U(0, 1)) and a random
target, the loss mean((clip(render, 0, 1) - target)^2):

(a) ``jit(value_and_grad)`` through the public ``render`` (no capacity
    given: under jit it guesses ~4 tiles per Gaussian and renders what
    does not fit in further exact passes), against
    - the managed path: ``render_with_stats`` with a capacity from
      ``pair_capacity`` (one pass; what the training loop does), and
    - the dense reference (``backend="reference"``: every pixel sees every
      Gaussian; what the public render fell back to before issue 16).
    Targets: public >= 50x faster than dense, within 2x of managed.
(b) ``jit(vmap(render))`` over B = 4 images against 4 calls of
    ``jit(render)`` on one image each. Target: within 1.5x.
(c) ``--own-loop``: docs/own_loop.md's example (``own_loop.train`` with
    fit_image's initialisation, optimiser and loss) against ``fit_image`` on
    the same image and N, alternating, each run once to compile and then
    ``--own-loop-repeats`` times; ms per step from the runs' wall time.
    Target: within 1.2x per step, the same final PSNR.

Timing: every function is compiled and run once before timing; each repeat
calls it ``iters`` times back to back and blocks once; the variants
alternate within a repeat; the median over repeats is reported. Inputs
cycle over several sets, so no call sees the inputs of the one before.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d.gaussians import Projected
from gauss2d.io import runrecord
from gauss2d.render import pair_capacity, render, render_with_stats
from gauss2d.settings import resolve

FULL = dict(cases=((256, 256, 2000), (512, 768, 10000)), repeats=5, iters=3, dense_repeats=2, batch=4)
QUICK = dict(cases=((128, 128, 500),), repeats=3, iters=2, dense_repeats=1, batch=4)
NUM_SETS = 3
TARGETS = "public >= 50x faster than dense and <= 2x managed; vmap B=4 <= 1.5x of 4 single renders"


def random_gaussians(rng: np.random.Generator, n: int, height: int, width: int):
    """(means [N, 2], conics [N, 3], colors [N, 3]) float32: sigma 1-6 px per axis, any rotation."""
    means = rng.uniform([0.0, 0.0], [width, height], size=(n, 2))
    s1, s2 = (rng.uniform(1.0, 6.0, size=n) ** 2 for _ in range(2))
    theta = rng.uniform(0.0, np.pi, size=n)
    cos, sin = np.cos(theta), np.sin(theta)
    sxx, sxy, syy = cos * cos * s1 + sin * sin * s2, cos * sin * (s1 - s2), sin * sin * s1 + cos * cos * s2
    det = sxx * syy - sxy * sxy
    conics = np.stack([syy / det, -sxy / det, sxx / det], axis=1)
    colors = rng.uniform(0.0, 1.0, size=(n, 3))
    return tuple(jnp.asarray(x, jnp.float32) for x in (means, conics, colors))


def _time(fns: dict[str, Callable[[int], object]], repeats: dict[str, int], iters: int) -> dict[str, float]:
    """Median seconds per call of each fn(i); variants alternate within a repeat."""
    for fn in fns.values():
        jax.block_until_ready(fn(0))  # compile + warm up
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(max(repeats.values())):
        for name, fn in fns.items():
            if r >= repeats[name]:
                continue
            start = time.perf_counter()
            out = None
            for i in range(iters if repeats[name] > 1 else 1):
                out = fn(r * iters + i + 1)
            jax.block_until_ready(out)
            samples[name].append((time.perf_counter() - start) / (iters if repeats[name] > 1 else 1))
    return {name: statistics.median(s) for name, s in samples.items()}


def _loss(image, target):
    return jnp.mean((jnp.clip(image, 0.0, 1.0) - target) ** 2)


def grad_case(height: int, width: int, n: int, cfg: dict, seed: int = 0, dense: bool = True) -> dict:
    """(a): seconds per jit(value_and_grad) step for public / managed / dense."""
    rng = np.random.default_rng(seed)
    sets = [random_gaussians(rng, n, height, width) for _ in range(NUM_SETS)]
    target = jnp.asarray(rng.uniform(size=(height, width, 3)), jnp.float32)
    capacity = max(pair_capacity(s, height, width, backend="xla") for s in sets)

    def public(m, q, c):
        return _loss(render(Projected(m, q, c), height, width), target)

    def managed(m, q, c):
        return _loss(
            render_with_stats(Projected(m, q, c), height, width, backend="xla", capacity=capacity)[0], target
        )

    def dense_loss(m, q, c):
        return _loss(render(Projected(m, q, c), height, width, backend="reference"), target)

    fns = {}
    variants = (("public", public), ("managed", managed), ("dense", dense_loss))
    for name, loss in variants if dense else variants[:2]:
        step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
        fns[name] = lambda i, step=step: step(*sets[i % NUM_SETS])
    # Every variant's value and gradients agree (the public render is exact).
    (v_pub, g_pub), (v_man, g_man) = fns["public"](0), fns["managed"](0)
    max_grad_diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(g_pub, g_man))
    repeats = {"public": cfg["repeats"], "managed": cfg["repeats"], "dense": cfg["dense_repeats"]}
    repeats = {k: v for k, v in repeats.items() if k in fns}
    seconds = _time(fns, repeats, cfg["iters"])
    return dict(
        size=f"{width}x{height}",
        n=n,
        capacity=capacity,
        **{f"{k}_ms": 1e3 * v for k, v in seconds.items()},
        loss_diff=abs(float(v_pub) - float(v_man)),
        grad_diff=max_grad_diff,
    )


def vmap_case(height: int, width: int, n: int, cfg: dict, seed: int = 1) -> dict:
    """(b): jit(vmap(render)) over B images against B calls of jit(render)."""
    batch = cfg["batch"]
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(NUM_SETS):
        images = [random_gaussians(rng, n, height, width) for _ in range(batch)]
        sets.append(tuple(jnp.stack(parts) for parts in zip(*images)))
    one = jax.jit(lambda m, q, c: render(Projected(m, q, c), height, width))
    batched = jax.jit(jax.vmap(lambda m, q, c: render(Projected(m, q, c), height, width)))

    def singles(i):
        m, q, c = sets[i % NUM_SETS]
        return [one(m[b], q[b], c[b]) for b in range(batch)]

    fns = {"vmap": lambda i: batched(*sets[i % NUM_SETS]), "singles": singles}
    out_v, out_s = fns["vmap"](0), jnp.stack(fns["singles"](0))
    seconds = _time(fns, {"vmap": cfg["repeats"], "singles": cfg["repeats"]}, cfg["iters"])
    return dict(
        size=f"{width}x{height}",
        n=n,
        batch=batch,
        **{f"{k}_ms": 1e3 * v for k, v in seconds.items()},
        max_diff=float(jnp.max(jnp.abs(out_v - out_s))),
    )


def own_loop_case(repeats: int) -> dict:
    """(c): the documented example's own_loop.train against fit_image, same image, N, steps."""
    import pathlib  # noqa: PLC0415
    import re  # noqa: PLC0415

    doc = pathlib.Path(__file__).resolve().parents[1] / "docs" / "own_loop.md"
    code = re.search(r"```python\n(.*?)```", doc.read_text(), re.DOTALL).group(1)
    scope: dict = {}
    exec(compile(code, str(doc), "exec"), scope)  # noqa: S102 (our own documentation; compiles both)
    steps = len(scope["result"].history["step"])
    rerun = {
        "own_loop": lambda: scope["own_loop"].train(
            scope["params"], scope["target"], scope["my_loss"], optimizer=scope["optimizer"], iterations=steps
        ),
        "fit_image": lambda: scope["fit"].fit_image(
            scope["target"], resolve(scope["config"]), scope["jax"].random.key(0)
        ),
    }
    seconds: dict[str, list[float]] = {k: [] for k in rerun}
    psnr = {}
    for _ in range(repeats):
        for name, fn in rerun.items():
            out = fn()
            seconds[name].append(out.seconds)
            psnr[name] = float(out.history["psnr"][-1])
    ms = {k: 1e3 * statistics.median(v) / steps for k, v in seconds.items()}
    h, w = scope["target"].shape[:2]
    return dict(size=f"{w}x{h}", n=scope["N"], steps=steps, ms=ms, psnr=psnr)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repeats")
    parser.add_argument("--own-loop", action="store_true", help="also (c): docs/own_loop.md vs fit_image")
    parser.add_argument("--only-own-loop", action="store_true", help="(c) only")
    parser.add_argument("--own-loop-repeats", type=int, default=3)
    parser.add_argument("--no-dense", action="store_true", help="skip the (slow) dense reference in (a)")
    parser.add_argument("--sizes", default="", help="e.g. 256x256x2000: only these (height x width x N)")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.sizes:
        cfg["cases"] = tuple(tuple(int(v) for v in size.split("x")) for size in args.sizes.split(","))
    command = "python -m benchmarks.own_loop_speed " + " ".join(argv if argv is not None else sys.argv[1:])
    print(
        f"date: {datetime.date.today().isoformat()}; machine: {runrecord.device_description()}; "
        f"commit: {runrecord.git_commit()}"
    )
    print(f"jax {jax.__version__}; command: {command}; targets: {TARGETS}\n")
    if args.only_own_loop:
        _print_own_loop(args.own_loop_repeats)
        return
    print("(a) jit(value_and_grad) step, ms (median); speed-ups in the same run")
    print("| size | N | public | managed | dense | dense / public | public / managed | max grad diff |")
    print("|---|---|---|---|---|---|---|---|")
    for h, w, n in cfg["cases"]:
        r = grad_case(h, w, n, cfg, dense=not args.no_dense)
        dense_ms = r.get("dense_ms", float("nan"))
        print(
            f"| {r['size']} | {n} | {r['public_ms']:.1f} | {r['managed_ms']:.1f} | {dense_ms:.0f} | "
            f"{dense_ms / r['public_ms']:.0f}x | {r['public_ms'] / r['managed_ms']:.2f}x | "
            f"{r['grad_diff']:.1e} |",
            flush=True,
        )
    print(f"\n(b) render forward, B = {cfg['batch']}, ms per batch (median)")
    print("| size | N | jit(vmap(render)) | B x jit(render) | vmap / singles | max diff |")
    print("|---|---|---|---|---|---|")
    for h, w, n in cfg["cases"]:
        r = vmap_case(h, w, n, cfg)
        print(
            f"| {r['size']} | {n} | {r['vmap_ms']:.1f} | {r['singles_ms']:.1f} | "
            f"{r['vmap_ms'] / r['singles_ms']:.2f}x | {r['max_diff']:.1e} |",
            flush=True,
        )
    if args.own_loop:
        _print_own_loop(args.own_loop_repeats)


def _print_own_loop(repeats: int) -> None:
    r = own_loop_case(repeats)
    print("\n(c) docs/own_loop.md's example vs fit_image, ms per step (median of runs, compiled)")
    print("| image | N | steps | own_loop | fit_image | ratio | PSNR own_loop | PSNR fit_image |")
    print("|---|---|---|---|---|---|---|---|")
    ms, psnr = r["ms"], r["psnr"]
    print(
        f"| {r['size']} | {r['n']} | {r['steps']} | {ms['own_loop']:.1f} | {ms['fit_image']:.1f} | "
        f"{ms['own_loop'] / ms['fit_image']:.2f}x | {psnr['own_loop']:.2f} | {psnr['fit_image']:.2f} |",
        flush=True,
    )


if __name__ == "__main__":
    main()

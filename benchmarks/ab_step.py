"""Step time of this checkout against another, in one process: the two steps timed in alternation.

    python -m benchmarks.ab_step --old ../base            # fit_speed's sizes
    python -m benchmarks.ab_step --old ../base --quick    # 64x96, seconds

``benchmarks.ab_speed`` alternates whole processes, which a loaded machine
can still put in different load phases. Here the other checkout's
``gauss2d`` is copied to a temporary package ``gauss2d_old`` (its imports
renamed), both fit steps (``fit.make_train_step`` as ``benchmarks.fit_speed``
builds it: base config, xla, the paper's random initialisation) are
compiled in this process, and the timed steps alternate old, new, old, new,
so both see the same load. Prints the median and the minimum ms / step of
each and the speed ratio new / old (old ms / new ms); with ``--hlo`` first
whether the two compiled steps are the same instructions (names, metadata
and order aside).
"""

from __future__ import annotations

import argparse
import collections
import importlib
import pathlib
import re
import shutil
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

from benchmarks.fit_speed import SIZES
from configs import base


def load_renamed(tree: pathlib.Path, name: str):
    """``tree``/gauss2d imported as package ``name`` (every ``gauss2d`` import renamed)."""
    folder = pathlib.Path(tempfile.mkdtemp())
    shutil.copytree(tree / "gauss2d", folder / name)
    for path in (folder / name).rglob("*.py"):
        text = path.read_text()
        path.write_text(re.sub(r"\bgauss2d\b(?=[. ])", name, text))
    sys.path.insert(0, str(folder))
    try:  # the regrouped layout: gauss2d/train/, typed settings
        mods = {m: importlib.import_module(f"{name}.train.{m}") for m in ("fit", "optim", "engine")}
        mods["gaussians"] = importlib.import_module(f"{name}.gaussians")
        mods["settings"] = importlib.import_module(f"{name}.settings")
        mods["render"] = importlib.import_module(f"{name}.render")
    except ImportError:
        mods = {m: importlib.import_module(f"{name}.{m}") for m in ("fit", "gaussians", "optim")}
        try:
            mods["engine"] = importlib.import_module(f"{name}.train")  # init_state, needed_capacity
        except ImportError:
            mods["engine"] = mods["fit"]  # before the training engine they were fit's
    return mods


def capacity_of(mods: dict, params, height: int, width: int) -> int:
    """The xla pair capacity, by whichever name the checkout has (needed_capacity before issue 22)."""
    if hasattr(mods["engine"], "needed_capacity"):
        return mods["engine"].needed_capacity(params, height, width, "xla")
    return mods["render"].capacity_for(params, height, width, backend="xla")


def base_settings(mods: dict):
    """The base config as that checkout's fit takes it: typed settings, or a ConfigDict before them."""
    config = base.get_base_config()
    return mods["settings"].resolve(config) if "settings" in mods else config


def step_of(mods: dict, height: int, width: int, n: int):
    """A jitted fit step and its state, as benchmarks.fit_speed builds them."""
    config = base_settings(mods)
    params = mods["gaussians"].init_random(jax.random.key(0), n)
    tx = mods["optim"].make_optimizer(config.optim, params)
    owner = mods["engine"]
    capacity = capacity_of(mods, params, height, width)
    step = jax.jit(mods["fit"].make_train_step(config, tx, height, width, capacity))
    target = jax.random.uniform(jax.random.key(1), (height, width, 3))
    total = jnp.asarray(10**9, jnp.int32)
    return (lambda s: step(s, target, total)[0]), owner.init_state(params, tx)


def compiled_ops(mods: dict, height: int, width: int, n: int) -> collections.Counter:
    """The optimised HLO instructions of the step, names and metadata stripped (a multiset)."""
    config = base_settings(mods)
    params = mods["gaussians"].init_random(jax.random.key(0), n)
    tx = mods["optim"].make_optimizer(config.optim, params)
    capacity = capacity_of(mods, params, height, width)
    step = jax.jit(mods["fit"].make_train_step(config, tx, height, width, capacity))
    state = mods["engine"].init_state(params, tx)
    text = step.lower(state, jnp.zeros((height, width, 3)), jnp.asarray(10, jnp.int32)).compile().as_text()
    ops = []
    for line in text.splitlines():
        if " = " not in line or '"/' in line:  # instructions only, not the source-file tables
            continue
        line = re.sub(r", metadata=\{.*?\}(?=,|$)", "", line)
        line = re.sub(r", (frontend_attributes|backend_config|origin)=\{.*\}", "", line)
        line = re.sub(r"%[\w.\-]+", "%", line)
        ops.append(re.sub(r"\b[\w.\-]+(?= = )", "", line).strip())
    return collections.Counter(ops)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old", required=True, type=pathlib.Path, help="the other checkout")
    parser.add_argument("--repeats", type=int, default=30, help="timed steps of each, alternating")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--hlo", action="store_true", help="also compare the compiled programs")
    args = parser.parse_args()
    import gauss2d  # noqa: PLC0415 (this checkout's, from PYTHONPATH)
    from gauss2d import gaussians, settings  # noqa: PLC0415
    from gauss2d.train import engine as train
    from gauss2d.train import fit, optim

    new = {"fit": fit, "gaussians": gaussians, "optim": optim, "engine": train, "settings": settings}
    old = load_renamed(args.old.resolve(), "gauss2d_old")
    print(f"new: {pathlib.Path(gauss2d.__file__).parent}, old: {args.old.resolve()}")
    print(
        "| size | Gaussians | old ms / step: median, min | new: median, min | speed new / old: median, min |"
    )
    print("|---|---|---|---|---|")
    for height, width, n in [(64, 96, 300)] if args.quick else SIZES:
        if args.hlo:
            same = compiled_ops(old, height, width, n) == compiled_ops(new, height, width, n)
            print(f"{width}x{height}, {n} Gaussians: same compiled step (instructions as a multiset): {same}")
        fns = {"old": step_of(old, height, width, n), "new": step_of(new, height, width, n)}
        states = {k: v[1] for k, v in fns.items()}
        times = {"old": [], "new": []}
        for k in range(args.repeats + 3):  # 3 warm-up rounds (compilation)
            for name in ("old", "new"):
                t0 = time.perf_counter()
                states[name] = jax.block_until_ready(fns[name][0](states[name]))
                if k >= 3:
                    times[name].append((time.perf_counter() - t0) * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        low = {k: min(v) for k, v in times.items()}
        print(
            f"| {width}x{height} | {n} | {med['old']:.2f}, {low['old']:.2f} "
            f"| {med['new']:.2f}, {low['new']:.2f} "
            f"| {med['old'] / med['new']:.3f}, {low['old'] / low['new']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

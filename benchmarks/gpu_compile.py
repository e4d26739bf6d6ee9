"""Compile the real GPU programs on a machine without a GPU (issue #17).

    python -m benchmarks.gpu_compile                 # a table of the programs and their Triton calls
    python -m benchmarks.gpu_compile --json=out.json

The programs are the ones a GPU runs: the Pallas render kernels (forward,
forward + backward, vmapped), the training chunk as ``fit`` builds it with
``render.backend="pallas"``, the batch chunk of ``fit_batch``, and the
alpha-composited model's kernels (vmapped forward + backward, and its
training chunk with ``model.blend="alpha"``). Each is
lowered for an H200 described to XLA (a compile-only device, no driver) and
compiled to machine code by XLA's GPU compiler; any lowering or compile error
is reported, and the ``__gpu$xla.gpu.triton`` calls of both the lowered and
the compiled program are counted and named.

Where the compiler comes from: the CUDA plugin wheels of the installed jax's
version (``jax-cuda12-plugin``, ``jax-cuda12-pjrt``; ~180 MB, no CUDA
libraries, no driver) and ``nvidia-cuda-nvcc-cu12`` (ptxas, for
``benchmarks.gpu_registers``). They are kept OUT of the environment: next to
jax on a machine without CUDA the plugin prints a "Jax plugin configuration
error" traceback at every JAX start. They go to
``.cache/gpu-compile/jax-<version>-py<X.Y>/`` (gitignored; filled by pip on
first use), which only the child process this module starts puts on its
path, with ``JAX_PLATFORMS=cpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "gpu-compile"
TRITON_CALL = "__gpu$xla.gpu.triton"
KERNELS = ("gauss2d_render_fwd", "gauss2d_render_bwd", "gauss2d_alpha_fwd", "gauss2d_alpha_bwd")
# program name -> Triton calls it must hold (forward and backward kernels once each where differentiated).
PROGRAMS = {
    "render_forward": 1,
    "render_forward_backward": 2,
    "render_vmapped_forward_backward": 2,
    "train_chunk": 2,
    "batch_chunk": 2,
    # The alpha-composited model's kernels (render/kernels/alpha.py, model.blend="alpha").
    "alpha_vmapped_forward_backward": 2,
    "alpha_train_chunk": 2,
}
# The target, as XLA's GpuTargetConfigProto (text format): an H200's
# published figures (compute capability 9.0, 132 SMs, 64K registers per SM,
# 228 KiB shared memory per SM). Only what the compiler reads for code
# generation matters here; the compiled program is never run.
H200_TARGET = """
gpu_device_info {
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_block_optin: 232448
  shared_memory_per_core: 233472
  threads_per_core_limit: 2048
  core_count: 132
  fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: 4800000000000
  l2_cache_size: 52428800
  clock_rate_ghz: 1.98
  device_memory_size: 150323855360
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
  cuda_compute_capability { major: 9 minor: 0 }
}
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 8 }
device_description_str: "NVIDIA H200"
"""
DEVICE_KIND = "NVIDIA H200"


def kernel_names(program: str) -> tuple[str, str]:
    """(forward, backward) kernel names that ``program`` holds: the alpha model's or the sum model's."""
    return KERNELS[2:] if program.startswith("alpha_") else KERNELS[:2]


class PluginUnavailable(RuntimeError):
    """The CUDA plugin wheels could not be installed (no network, no wheel for this jax)."""


def _jax_version() -> str:
    from importlib import metadata  # noqa: PLC0415

    return metadata.version("jax")


def wheels(jax_version: str, cuda: int = 12) -> list[str]:
    """Requirement strings of the plugin directory for ``jax_version`` with CUDA ``cuda`` (12 or 13)."""
    if cuda == 13:
        return [
            f"jax-cuda13-plugin=={jax_version}",
            f"jax-cuda13-pjrt=={jax_version}",
            "nvidia-cuda-nvcc>=13,<14",  # ptxas for the register report (the compile needs none)
        ]
    return [
        f"jax-cuda12-plugin=={jax_version}",
        f"jax-cuda12-pjrt=={jax_version}",
        "nvidia-cuda-nvcc-cu12>=12.8,<13",  # ptxas for the register report (the compile needs none)
    ]


# CUDA 12 first (what the checks were written on); CUDA 13 where a jax release has
# no CUDA 12 plugin (jax 0.12.1 shipped jax-cuda13-plugin only: CI's second leg).
CUDA_VERSIONS = (12, 13)


def plugin_dir(jax_version: str | None = None) -> pathlib.Path:
    """Where the plugin wheels for this jax and Python live."""
    version = jax_version or _jax_version()
    return CACHE / f"jax-{version}-py{sys.version_info.major}.{sys.version_info.minor}"


def ensure_plugin(install: bool = True) -> pathlib.Path:
    """The plugin directory, filled with pip on first use (atomically: a half install is never used).

    Raises:
      PluginUnavailable: not there and ``install`` is False, or pip failed.
    """
    target = plugin_dir()
    if (target / "COMPLETE").exists():
        return target
    if not install:
        raise PluginUnavailable(f"{target} is not filled (python -m benchmarks.gpu_compile fills it)")
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix="staging-", dir=CACHE))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(staging)]
    failures = []
    for cuda in CUDA_VERSIONS:
        requirements = wheels(_jax_version(), cuda)
        proc = subprocess.run(command + requirements, capture_output=True, text=True)
        if proc.returncode == 0:
            break
        last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        failures.append(f"pip could not install {' '.join(requirements)}: {last}")
    else:
        shutil.rmtree(staging, ignore_errors=True)
        raise PluginUnavailable("; ".join(failures))
    (staging / "COMPLETE").write_text(" ".join(requirements) + "\n")
    try:
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except OSError:  # another process filled it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "COMPLETE").exists():
            raise
    return target


def child_env(site: pathlib.Path, dump_dir: pathlib.Path | None = None) -> dict[str, str]:
    """The environment of the compiling child: the plugin on its path, JAX on the CPU."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), str(ROOT), env.get("PYTHONPATH", "")]))
    # Without JAX_PLATFORMS=cpu the plugin's CUDA-library check stops the
    # compiler from registering; with it, nothing tries to open a GPU.
    env["JAX_PLATFORMS"] = "cpu"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # nothing to reuse: compile-only executables
    if dump_dir is not None:
        # JAX 0.10's XLA dumps the PTX with --xla_dump_to alone (and aborts
        # with the two flags below); 0.11's needs them to dump it at all.
        dump = f"--xla_dump_to={dump_dir}"
        if dumps_ptx_with_extra_flags():
            dump += " --xla_gpu_dump_llvmir=true --xla_dump_emitter_re=.*"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {dump}".strip()
    return env


def _version_tuple() -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", _jax_version())[:2])


def dumps_ptx_with_extra_flags() -> bool:
    """JAX 0.11 needs extra XLA flags to dump PTX; checked on 0.10.2 and 0.11.2."""
    return _version_tuple() >= (0, 11)


def register_report_supported() -> tuple[bool, str]:
    """Whether the PTX dump (and so ``benchmarks.gpu_registers``) works with this jax.

    Checked: 0.10.2 and 0.11.2 yes; 0.12.0.1 no: its XLA aborted the
    dumping compile ("pure virtual method called") with the flags 0.11 needs.
    """
    if _version_tuple() >= (0, 12):
        return False, f"jax {_jax_version()}: XLA aborts a PTX-dumping compile (checked on 0.12.0.1)"
    return True, ""


def compile_in_child(
    programs: list[str] | None = None,
    config: dict | None = None,
    dump_dir: pathlib.Path | None = None,
    install: bool = True,
    timeout: float = 900,
) -> dict:
    """Compiles ``programs`` (default: all) in a child with the plugin; returns its report.

    Args:
      programs: names from ``PROGRAMS``.
      config: ``PallasConfig`` fields for the kernels (default: the defaults).
      dump_dir: if given, XLA dumps the compiled programs there (PTX included).
      install: fill the plugin directory if needed.
      timeout: seconds before the child is stopped.

    Returns:
      {"jax": version, "target": kind, "programs": {name: result}} where a
      result holds ``lowered_triton_calls``, ``compiled_triton_calls``,
      ``kernels`` (name -> count), ``lower_s``, ``compile_s`` and ``error``.

    Raises:
      PluginUnavailable: the plugin wheels cannot be had.
      RuntimeError: the child failed outside any one program.
    """
    site = ensure_plugin(install)
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "report.json"
        command = [sys.executable, "-m", "benchmarks.gpu_compile", "--child", f"--json={out}"]
        command += [f"--programs={','.join(programs or PROGRAMS)}", f"--config={json.dumps(config or {})}"]
        proc = subprocess.run(
            command, env=child_env(site, dump_dir), cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"the compiling child failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text())


# ---- everything below runs in the child, with the plugin importable ----


def target_device():
    """A compile-only H200 (no driver needed): XLA compiles for it, nothing runs."""
    from jax.experimental import topologies  # noqa: PLC0415

    topology = topologies.get_topology_desc(platform="cuda", target_config=H200_TARGET, topology="1x1x1")
    return topology.devices[0]


def lowering_context(device):
    """Names the GPU being lowered for to Pallas.

    From JAX 0.11 the Triton lowering reads the compute capability from the
    device kind of the abstract mesh in use and no longer falls back to sm_90
    when no GPU is attached, so the compile-only device is described to it
    there. JAX 0.10 reads it from the same place when it is set.
    """
    import jax  # noqa: PLC0415

    abstract_device = jax.sharding.AbstractDevice(
        device_kind=device.device_kind, num_cores=132, platform="gpu"
    )
    return jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((), (), abstract_device=abstract_device))


def _abstract(tree, device):
    """ShapeDtypeStructs of ``tree``'s leaves, placed on ``device``."""
    import jax  # noqa: PLC0415

    sharding = jax.sharding.SingleDeviceSharding(device)
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def build_programs(names, config_fields: dict, device) -> dict:
    """name -> (jitted function, abstract arguments on ``device``) for each program in ``names``."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from configs import base  # noqa: PLC0415
    from gauss2d import gaussians  # noqa: PLC0415
    from gauss2d.render import capacity_for  # noqa: PLC0415
    from gauss2d.render import kernels as pallas  # noqa: PLC0415
    from gauss2d.settings import resolve  # noqa: PLC0415
    from gauss2d.train import batch as fit_batch
    from gauss2d.train import engine as train
    from gauss2d.train import fit, optim

    height, width, num = 48, 80, 256  # 3 x 5 tiles of 16; small: compile time, not size, is tested
    pconfig = pallas.PallasConfig(**config_fields)
    params = gaussians.init_random(jax.random.key(0), num)
    proj = gaussians.project(params, fitted_height=height, fitted_width=width)
    capacity = capacity_for(params, height, width, backend="pallas")

    def render(m, q, c):
        return pallas.render_tiled_pallas(m, q, c, height, width, capacity=capacity, config=pconfig)

    def loss(m, q, c):
        return jnp.sum(render(m, q, c)[0] ** 2)

    grad = jax.value_and_grad(loss, argnums=(0, 1, 2))
    batch = tuple(jnp.stack([x, x]) for x in proj)
    programs = {
        "render_forward": (jax.jit(lambda *a: render(*a)[0]), proj),
        "render_forward_backward": (jax.jit(grad), proj),
        "render_vmapped_forward_backward": (jax.jit(jax.vmap(grad)), batch),
    }
    if {"train_chunk", "batch_chunk"} & set(names):
        cfg = base.get_base_config()
        cfg.render.backend = "pallas"
        cfg.model.num_points = num
        cfg = resolve(cfg)
        tx = optim.make_optimizer(cfg.optim, params)
        state = train.init_state(params, tx)
        target = jnp.zeros((height, width, 3), jnp.float32)
        total = jnp.asarray(100, jnp.int32)
        # The chunks exactly as fit_image and fit_batch get them from the engine
        # (train.run_image -> train.image_chunks; fit_batch.batch_chunks).
        goal = fit.objective(cfg, tx, height, width, params)
        chunk = train.image_chunks(goal, 4, height, width)(capacity)
        programs["train_chunk"] = (chunk, (state, target, total))
        batch_chunk = fit_batch.batch_chunks(goal, 4, height, width, mesh=None, masked=False)(capacity)
        states = fit_batch.stack_trees([state, state])
        programs["batch_chunk"] = (batch_chunk, (states, jnp.stack([target, target]), total))
    if {"alpha_vmapped_forward_backward", "alpha_train_chunk"} & set(names):
        programs.update(_alpha_programs(config_fields, height, width, num))
    return {name: (fn, _abstract(args, device)) for name, (fn, args) in programs.items() if name in names}


def _alpha_programs(config_fields: dict, height: int, width: int, num: int) -> dict:
    """The alpha model's programs: its kernels vmapped with their gradient, and its training chunk.

    ``config_fields`` change the alpha kernels' own defaults (``alpha_pallas.DEFAULT_CONFIG``).
    """
    import dataclasses  # noqa: PLC0415

    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from configs import base  # noqa: PLC0415
    from gauss2d import gaussians  # noqa: PLC0415
    from gauss2d.render import capacity_for  # noqa: PLC0415
    from gauss2d.render.kernels import alpha as alpha_pallas  # noqa: PLC0415
    from gauss2d.settings import resolve  # noqa: PLC0415
    from gauss2d.train import engine as train
    from gauss2d.train import fit, optim

    pconfig = dataclasses.replace(alpha_pallas.DEFAULT_CONFIG, **config_fields)

    params = gaussians.init_alpha(gaussians.init_random(jax.random.key(0), num), jax.random.key(1))
    proj, opacities, depths = gaussians.project_alpha(params, fitted_height=height, fitted_width=width)
    capacity = capacity_for(params, height, width, backend="pallas")

    def loss(m, q, c, o, z):
        image, _ = alpha_pallas.render_alpha_tiled_pallas(
            m, q, c, o, z, height, width, capacity=capacity, config=pconfig
        )
        return jnp.sum(image**2)

    grad = jax.vmap(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))
    batch = tuple(jnp.stack([x, x]) for x in (*proj, opacities, depths))
    cfg = base.get_base_config()
    cfg.render.backend = "pallas"
    cfg.model.blend = "alpha"
    cfg.model.num_points = num
    cfg = resolve(cfg)
    tx = optim.make_optimizer(cfg.optim, params)
    state = train.init_state(params, tx)
    target = jnp.zeros((height, width, 3), jnp.float32)
    chunk = train.image_chunks(fit.objective(cfg, tx, height, width, params), 4, height, width)(capacity)
    return {
        "alpha_vmapped_forward_backward": (jax.jit(grad), batch),
        "alpha_train_chunk": (chunk, (state, target, jnp.asarray(100, jnp.int32))),
    }


def compile_one(fn, args, device) -> dict:
    """Lowers and compiles one program; never raises (the error is part of the result)."""
    result = {"lowered_triton_calls": None, "compiled_triton_calls": None, "kernels": {}, "error": None}
    try:
        t0 = time.perf_counter()
        with lowering_context(device):
            lowered = fn.trace(*args).lower()
        text = lowered.as_text()
        result["lower_s"] = time.perf_counter() - t0
        result["lowered_triton_calls"] = text.count(TRITON_CALL)
        t0 = time.perf_counter()
        compiled = lowered.compile()
        result["compile_s"] = time.perf_counter() - t0
        hlo = compiled.as_text() or ""
        target = f'custom_call_target="{TRITON_CALL}"'
        result["compiled_triton_calls"] = hlo.count(target)
        # Kernel names as the Triton calls carry them in their configs (lowered module).
        result["kernels"] = {k: len(re.findall(rf'name = \\?"{k}\\?"', text)) for k in KERNELS}
    except Exception as e:  # noqa: BLE001 (the report says what failed; the test asserts on it)
        result["error"] = f"{type(e).__name__}: {e}"[:4000]
    return result


def child_main(args) -> None:
    import jax  # noqa: PLC0415

    names = args.programs.split(",")
    unknown = sorted(set(names) - set(PROGRAMS))
    if unknown:
        raise SystemExit(f"unknown programs {unknown}; expected some of {sorted(PROGRAMS)}")
    device = target_device()
    report = {"jax": jax.__version__, "target": device.device_kind, "programs": {}}
    for name, (fn, abstract_args) in build_programs(names, json.loads(args.config), device).items():
        report["programs"][name] = compile_one(fn, abstract_args, device)
        print(f"{name}: {report['programs'][name]}", file=sys.stderr, flush=True)
    pathlib.Path(args.json).write_text(json.dumps(report, indent=1))


def format_report(report: dict) -> str:
    """A markdown table: one row per program."""
    lines = [
        f"jax {report['jax']}, target {report['target']} (compile-only)\n",
        "| program | Triton calls lowered / compiled (expected) | kernels | lower s | compile s | error |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in report["programs"].items():
        kernels = ", ".join(f"{k.removeprefix('gauss2d_')} x{n}" for k, n in r["kernels"].items() if n)
        lines.append(
            f"| {name} | {r['lowered_triton_calls']} / {r['compiled_triton_calls']} ({PROGRAMS[name]}) | "
            f"{kernels} | {r.get('lower_s', 0):.1f} | {r.get('compile_s', 0):.1f} | {r['error'] or ''} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", default=",".join(PROGRAMS))
    parser.add_argument("--config", default="{}", help="PallasConfig fields as JSON")
    parser.add_argument("--json", default="", help="write the report here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
        # The report is written; skip interpreter teardown, where jax 0.12's
        # XLA aborted once ("pure virtual method called") after a dumping compile.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    try:
        report = compile_in_child(args.programs.split(","), json.loads(args.config))
    except PluginUnavailable as e:
        raise SystemExit(f"gpu_compile: {e}") from None
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1))
    print(format_report(report))
    failed = [n for n, r in report["programs"].items() if r["error"]]
    if failed:
        raise SystemExit(f"gpu_compile: {len(failed)} program(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

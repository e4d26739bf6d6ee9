"""Shared test fixtures and paths."""

from __future__ import annotations

import gc
import os
import pathlib
import sys
import tempfile

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
KODAK_DIR = REPO_ROOT.parent / "shared" / "data" / "kodak"

# One persistent XLA compilation cache for the whole run, inherited by the
# subprocesses (CLI tests, notebook kernels): they compile the same smoke
# programs again and again, which was most of their time. Set before any test
# module imports jax; a fresh directory per run, so nothing stale is reused.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="gauss2d-test-xla-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
# The codec CLI (decode_render.enable_compile_cache) would otherwise point
# its subprocesses at ~/.cache/gauss2d/jax with thresholds of 0; they share
# the run's cache above instead.
os.environ.setdefault("GAUSS2D_COMPILE_CACHE", "")
# On a GPU each JAX process reserves 75% of its memory at first use; the test workers
# (one per core), their CLI subprocesses and gpu_check's child pytest share the one GPU,
# so each takes only what it uses. No effect on the CPU.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402  (after the environment above, which jax reads on import)

# The pytest process reads and writes the run's cache too: each module's
# jax.clear_caches() below, and every closure a compress or fit builds anew,
# recompile programs it already compiled (measured: -16% on test_rdo,
# test_prefixes, test_position_refine and test_codec_v3_layers). It was once
# off because serialising an executable segfaulted CI in test_resolution;
# the cause was vm.max_map_count (see _free_compiled_programs), fixed since.
jax.config.update("jax_enable_compilation_cache", True)


# The longest test files (seconds, summed per file: 2026-12-08, one process on the 2-core
# VM), started first so that the workers finish together instead of one running the
# video files alone at the end. Order only: a stale name changes nothing else.
LONGEST_FIRST = (
    "test_notebooks.py",  # 181
    "test_rdo.py",  # 95
    "test_prefixes.py",  # 91
    "test_svg_quality.py",  # 85
    "test_cli_fit.py",  # 82
    "test_rd_sweep.py",  # 77
    "test_video_cli.py",  # 60
    "test_codec_v3_cli.py",  # 62
    "test_gpu_compile.py",  # 62
)


def pytest_collection_modifyitems(config, items):
    """Runs LONGEST_FIRST's files before the rest (each file's own order kept)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.hookimpl(optionalhook=True)  # xdist's hook: without xdist (-p no:xdist) pytest must not refuse it
def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject.toml's addopts): one worker per core, at most 4.

    Each worker is a JAX process that may hold a few GB (the RD and video
    tests); four keep a 16 GB laptop clear, and beyond that the longest test
    files, not the worker count, set the wall time.
    """
    return max(1, min(4, os.cpu_count() or 1))


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drops every compiled program after each test module.

    Each program XLA compiles for the CPU holds ~6 memory mappings of its
    own (measured: 300 small programs, 425 -> 2292 mappings, back to 517
    after jax.clear_caches). A whole run compiles thousands; past Linux's
    vm.max_map_count (65530) the next mmap fails and XLA crashes with a
    segfault: CI's full run died that way at 95%, while compiling or
    serialising a program in test_resolution, three times; the same tests
    alone pass. Modules that share programs compile them again (seconds).
    """
    yield
    jax.clear_caches()
    gc.collect()


# Tests import the float64 oracle as a plain module.
sys.path.insert(0, str(pathlib.Path(__file__).parent))


@pytest.fixture
def kodak_dir() -> pathlib.Path:
    """The 24 Kodak images, present in CI at ../shared/data/kodak."""
    if not (KODAK_DIR / "kodim23.png").exists():
        pytest.skip(f"Kodak images not found at {KODAK_DIR} (present in CI; see README)")
    return KODAK_DIR

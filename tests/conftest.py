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

import jax  # noqa: E402  (after the environment above, which jax reads on import)

# The pytest process itself neither reads nor writes that cache; only its
# subprocesses do (in-process programs are compiled once anyway).
jax.config.update("jax_enable_compilation_cache", False)


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

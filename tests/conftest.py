"""Shared test fixtures and paths."""

from __future__ import annotations

import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
KODAK_DIR = REPO_ROOT.parent / "shared" / "data" / "kodak"

# Tests import the float64 oracle as a plain module.
sys.path.insert(0, str(pathlib.Path(__file__).parent))


@pytest.fixture
def kodak_dir() -> pathlib.Path:
    """The 24 Kodak images, present in CI at ../shared/data/kodak."""
    if not (KODAK_DIR / "kodim23.png").exists():
        pytest.skip(f"Kodak images not found at {KODAK_DIR} (present in CI; see README)")
    return KODAK_DIR

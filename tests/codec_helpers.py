"""What the codec tests share: test Gaussians, per-version settings, byte mutations."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from gauss2d import codec
from gauss2d.gaussians import CholeskyParams

H, W = 40, 56
# The v2 settings most codec tests were written for: raw Cholesky factors and
# one colour step for every size (settings.CodecSettings defaults to "log"
# and colour steps by size; tests that need those say so).
V2_PLAIN = {"cov_space": "cholesky", "color_by_size": False}


def random_params(n=200, seed=0, h=H, w=W) -> CholeskyParams:
    """Fitted-looking Gaussians: clustered colours, peaked Cholesky factors."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.02, 0.98, (n, 2)) * [w, h]
    xy = np.arctanh(2.0 * means / [w, h] - 1.0)
    chol = rng.laplace([0.8, 0.0, 0.8], [0.3, 0.15, 0.3], (n, 3))
    palette = rng.uniform(-0.2, 1.0, (6, 3))
    color = palette[rng.integers(0, 6, n)] + rng.normal(0, 0.05, (n, 3))
    return CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))


def assert_bit_equal(a, b) -> None:
    """Every field of two parameter tuples equal bit for bit (float32)."""
    assert type(a)._fields == type(b)._fields
    for name, x, y in zip(type(a)._fields, a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape, name
        np.testing.assert_array_equal(x.view(np.uint32), y.view(np.uint32), err_msg=name)


def v1_settings(mode: str = "entropy", seed: int = 0, **changes) -> codec.V1Settings:
    """``V1Settings`` from ``CodecSettings`` defaults with ``changes`` (CodecSettings field names)."""
    return codec.format_settings(1, mode=mode, seed=seed, **changes)


def v2_settings(model: str | None = None, **changes) -> codec.V2Settings:
    """``V2Settings`` from ``V2_PLAIN`` with ``changes``; ``model`` is ``codec.entropy_model``."""
    if model is not None:
        changes["entropy_model"] = model
    return codec.format_settings(2, **{**V2_PLAIN, **changes})


def encode_v1(params, h, w, *, mode="entropy", state=None, settings=None, target=None) -> bytes:
    settings = v1_settings(mode) if settings is None else settings
    return codec.encode(params, h, w, version=1, state=state, settings=settings, target=target)


def encode_v2(params, h, w, state=None, settings=None, *, target=None) -> bytes:
    settings = v2_settings() if settings is None else settings
    return codec.encode(params, h, w, version=2, state=state, settings=settings, target=target)


def mutate(
    data: bytes, rng, kinds: tuple[str, ...], header_span: tuple[int, int], payloads
) -> tuple[str, bytes]:
    """One random mutation of ``data``: (its kind, the mutant).

    Args:
      kinds: some of "flip", "byte", "truncate", "insert", "delete",
        "duplicate", "header", "payload".
      header_span: [start, end) byte offsets the "header" kind overwrites.
      payloads: [(start, end)] of the sections "duplicate" copies and
        "payload" overwrites (of ``data``; may be empty).
    """
    data = bytearray(data)
    kind = rng.choice(list(kinds))
    n = len(data)
    if kind == "flip":
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(0, n)
            data[i] ^= 1 << rng.integers(0, 8)
    elif kind == "byte":
        data[rng.integers(0, n)] = rng.integers(0, 256)
    elif kind == "truncate":
        data = data[: rng.integers(0, n)]
    elif kind == "insert":
        i = rng.integers(0, n + 1)
        data[i:i] = rng.bytes(int(rng.integers(1, 9)))
    elif kind == "delete":
        i = rng.integers(0, n)
        del data[i : i + rng.integers(1, 9)]
    elif kind == "duplicate" and payloads:  # a whole section twice
        start, end = payloads[rng.integers(0, len(payloads))]
        data[end:end] = data[start:end]
    elif kind == "header":  # a fixed header field (sizes, enums) set to an arbitrary value
        i = int(rng.integers(*header_span))
        if i < n:
            data[i] = rng.choice([0, 1, 2, 127, 128, 255, rng.integers(0, 256)])
    elif payloads:  # bytes of an attribute payload: what the entropy decoder reads
        start, end = payloads[rng.integers(0, len(payloads))]
        if end > start:
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(start, end)] = rng.integers(0, 256)
    return str(kind), bytes(data)

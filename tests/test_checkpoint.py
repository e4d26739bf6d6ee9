"""Tests for gauss2d.io.checkpoint: round trips, mismatch errors, atomicity."""

import json
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gauss2d import gaussians
from gauss2d.errors import CheckpointError, Gauss2dError
from gauss2d.io import checkpoint


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array


def _params(num_points: int, parameterization: str = "cholesky", seed: int = 0) -> gaussians.Params:
    # NumPy-made values: eager jax ops would compile per shape and slow the tests down.
    rng = np.random.default_rng(seed)
    cls = {"cholesky": gaussians.CholeskyParams, "rs": gaussians.RSParams}[parameterization]
    widths = {"xy": 2, "chol": 3, "color": 3, "scale": 2, "rotation": 1}
    return cls(*(jnp.asarray(rng.normal(size=(num_points, widths[f])), jnp.float32) for f in cls._fields))


def _state(num_points: int, seed: int = 0, steps: int = 3) -> TrainState:
    """A train-state-like pytree: params, an adam state mid-run, an int step, a typed key."""
    params = _params(num_points, seed=seed)
    opt_state = optax.adam(1e-2).init(params)  # the real optax structure ...
    rng = np.random.default_rng(seed + 100)
    adam, *rest = opt_state
    adam = adam._replace(  # ... with non-trivial moments, as after `steps` updates
        count=jnp.asarray(steps, jnp.int32),
        mu=jax.tree.map(lambda x: rng.normal(size=x.shape).astype(np.float32), adam.mu),
        nu=jax.tree.map(lambda x: rng.uniform(size=x.shape).astype(np.float32), adam.nu),
    )
    return TrainState(params, (adam, *rest), jnp.asarray(steps, jnp.int32), jax.random.key(seed))


def _assert_trees_equal(a, b):
    a_leaves, a_def = jax.tree.flatten(a)
    b_leaves, b_def = jax.tree.flatten(b)
    assert a_def == b_def
    for x, y in zip(a_leaves, b_leaves):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def test_round_trip_with_adam_state(tmp_path):
    state = _state(10)
    metadata = {"config": {"model": {"num_points": 10}, "lr": 0.01}, "step": 3, "image": "kodim23.png"}
    path = tmp_path / "run" / "ckpt.npz"  # parent does not exist yet
    checkpoint.save(path, state, metadata)
    assert checkpoint.exists(path) and not checkpoint.exists(tmp_path / "other.npz")

    restored, meta = checkpoint.load(path, _state(10, seed=5, steps=0))  # same structure, other values
    assert meta == metadata
    assert isinstance(restored, TrainState) and isinstance(restored.params, gaussians.CholeskyParams)
    assert isinstance(restored.params.xy, np.ndarray)
    assert int(restored.opt_state[0].count) == 3
    _assert_trees_equal(restored, state)


def test_round_trip_scalar_bfloat16_and_numpy_metadata(tmp_path):
    state = {"w": jnp.arange(4, dtype=jnp.bfloat16) / 3, "epoch": 7, "lr": np.float32(0.5)}
    checkpoint.save(tmp_path / "c.npz", state, {"loss": np.float32(0.25), "hist": np.arange(3)})
    restored, meta = checkpoint.load(
        tmp_path / "c.npz", {"w": jnp.zeros(4, jnp.bfloat16), "epoch": 0, "lr": np.float32(0)}
    )
    assert restored["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(restored["w"].astype(np.float32), np.asarray(state["w"], np.float32))
    assert int(restored["epoch"]) == 7 and float(restored["lr"]) == 0.5
    assert meta == {"loss": 0.25, "hist": [0, 1, 2]}


def test_template_may_be_shape_dtype_structs(tmp_path):
    state = {"a": np.ones((2, 3), np.float32), "b": np.int32(4)}
    checkpoint.save(tmp_path / "c.npz", state, {})
    restored, _ = checkpoint.load(
        tmp_path / "c.npz", jax.eval_shape(lambda: jax.tree.map(jnp.asarray, state))
    )
    _assert_trees_equal(restored, state)


def test_shape_mismatch_names_leaf(tmp_path):
    checkpoint.save(tmp_path / "ckpt.npz", _state(100), {})
    with pytest.raises(
        CheckpointError, match=r"ckpt\.npz.*\.params\.xy has shape \(100, 2\), expected \(200, 2\)"
    ):
        checkpoint.load(tmp_path / "ckpt.npz", _state(200))


def test_dtype_mismatch_names_leaf(tmp_path):
    checkpoint.save(tmp_path / "ckpt.npz", {"x": np.zeros(3, np.float32)}, {})
    with pytest.raises(CheckpointError, match=r"\['x'\] has dtype float32, expected float64"):
        checkpoint.load(tmp_path / "ckpt.npz", {"x": np.zeros(3, np.float64)})


def test_structure_mismatch(tmp_path):
    checkpoint.save(tmp_path / "ckpt.npz", _state(4), {})
    rs_params = _params(4, "rs")  # 4 fields instead of 3
    template = _state(4)._replace(params=rs_params, opt_state=optax.adam(1e-2).init(rs_params))
    with pytest.raises(CheckpointError, match=r"ckpt\.npz.*leaves, expected"):
        checkpoint.load(tmp_path / "ckpt.npz", template)
    # Same leaf count, different field names.
    checkpoint.save(tmp_path / "d.npz", {"a": np.zeros(2)}, {})
    with pytest.raises(CheckpointError, match=r"leaf 0 is \['a'\], expected \['b'\]"):
        checkpoint.load(tmp_path / "d.npz", {"b": np.zeros(2)})


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, _state(8), {"step": 3})
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(CheckpointError, match=r"ckpt\.npz"):
        checkpoint.load(path, _state(8))


def test_garbage_and_missing_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="junk.npz.*not an .npz file"):
        checkpoint.load(tmp_path / "junk.npz", {"x": np.zeros(2)})
    with pytest.raises(CheckpointError, match="absent.npz"):
        checkpoint.load(tmp_path / "absent.npz", {"x": np.zeros(2)})
    (tmp_path / "empty.npz").write_bytes(b"")  # e.g. a crash before any byte hit the disk
    with pytest.raises(CheckpointError, match="empty.npz"):
        checkpoint.load(tmp_path / "empty.npz", {"x": np.zeros(2)})
    np.savez(tmp_path / "plain.npz", x=np.zeros(2))  # an npz, but not ours
    with pytest.raises(CheckpointError, match="plain.npz.*not a gauss2d checkpoint"):
        checkpoint.load(tmp_path / "plain.npz", {"x": np.zeros(2)})


def test_unserialisable_metadata_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        checkpoint.save(tmp_path / "c.npz", {"x": np.zeros(2)}, {"bad": object()})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch, exc):
    path = tmp_path / "ckpt.npz"
    old = _state(8, seed=1)
    checkpoint.save(path, old, {"step": 1})

    real_savez = np.savez

    def savez_then_fail(file, **arrays):
        real_savez(file, **arrays)  # the temp file is fully written ...
        raise exc  # ... and then the process is interrupted before the rename

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(type(exc)):
        checkpoint.save(path, _state(8, seed=2), {"step": 2})
    monkeypatch.undo()

    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temp file left behind
    restored, meta = checkpoint.load(path, _state(8))
    assert meta == {"step": 1}
    _assert_trees_equal(restored, old)


def test_failed_rename_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, {"x": np.ones(3)}, {"step": 1})

    def fail_replace(src, dst):
        raise OSError("simulated crash at rename")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(OSError, match="simulated"):
        checkpoint.save(path, {"x": np.zeros(3)}, {"step": 2})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    restored, meta = checkpoint.load(path, {"x": np.zeros(3)})
    assert meta == {"step": 1} and restored["x"].tolist() == [1, 1, 1]


@pytest.mark.parametrize("parameterization", gaussians.PARAMETERIZATIONS)
def test_params_npz_round_trip(tmp_path, parameterization):
    params = _params(17, parameterization, seed=3)
    path = tmp_path / "out" / "params.npz"
    checkpoint.save_params_npz(path, params)
    with np.load(path, allow_pickle=False) as npz:  # readable by plain numpy, no pickle
        assert sorted(npz.files) == sorted(params._fields + ("parameterization",))
        assert str(npz["parameterization"]) == parameterization
    loaded = checkpoint.load_params_npz(path)
    assert type(loaded) is type(params)
    assert all(isinstance(x, jax.Array) for x in loaded)
    _assert_trees_equal(loaded, params)


def test_params_npz_errors(tmp_path):
    n = 5
    np.savez(tmp_path / "unknown.npz", xy=np.zeros((n, 2)), parameterization=np.array("polar"))
    with pytest.raises(CheckpointError, match=r"unknown\.npz.*'polar'"):
        checkpoint.load_params_npz(tmp_path / "unknown.npz")
    np.savez(tmp_path / "nokind.npz", xy=np.zeros((n, 2)))
    with pytest.raises(CheckpointError, match=r"nokind\.npz.*parameterization None"):
        checkpoint.load_params_npz(tmp_path / "nokind.npz")
    np.savez(
        tmp_path / "missing.npz",
        xy=np.zeros((n, 2)),
        color=np.zeros((n, 3)),
        parameterization=np.array("cholesky"),
    )
    with pytest.raises(CheckpointError, match=r"missing\.npz.*\['chol'\]"):
        checkpoint.load_params_npz(tmp_path / "missing.npz")
    np.savez(
        tmp_path / "shape.npz",
        xy=np.zeros((n, 2)),
        chol=np.zeros((n + 1, 3)),
        color=np.zeros((n, 3)),
        parameterization=np.array("cholesky"),
    )
    with pytest.raises(CheckpointError, match=r"shape\.npz.*chol has shape \(6, 3\)"):
        checkpoint.load_params_npz(tmp_path / "shape.npz")


def test_atomic_write_gives_normal_file_mode(tmp_path):
    # A temp-file write must not leave the final file with mkstemp's 0600 mode.
    (tmp_path / "plain.bin").write_bytes(b"x")
    with checkpoint.atomic_write(tmp_path / "atomic.bin") as f:
        f.write(b"x")
    assert (tmp_path / "atomic.bin").read_bytes() == b"x"
    assert (tmp_path / "atomic.bin").stat().st_mode == (tmp_path / "plain.bin").stat().st_mode


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda s: s._replace(step=jnp.asarray(-1000000, jnp.int32)), ".step = -1000000 is negative"),
        (
            lambda s: s._replace(params=s.params._replace(xy=s.params.xy.at[2, 1].set(jnp.nan))),
            ".params.xy holds 1 NaN/Inf",
        ),
        (
            lambda s: s._replace(
                opt_state=(s.opt_state[0]._replace(count=jnp.asarray(-5, jnp.int32)),)
                + tuple(s.opt_state[1:])
            ),
            "count = -5 is negative",
        ),
        (
            lambda s: s._replace(
                opt_state=(
                    s.opt_state[0]._replace(
                        nu=jax.tree.map(lambda x: np.full_like(x, np.inf), s.opt_state[0].nu)
                    ),
                )
                + tuple(s.opt_state[1:])
            ),
            "NaN/Inf",
        ),
    ],
)
def test_values_no_run_writes_are_refused_on_load(tmp_path, damage, fragment):
    # Issue 15: a shape-correct checkpoint with a step of -1000000 ran for
    # ever, and NaN parameters were trained on.
    good = _state(5)
    path = tmp_path / "bad.npz"
    checkpoint.save(path, damage(good), {"step": int(damage(good).step)})
    with pytest.raises(CheckpointError, match="cannot be resumed") as err:
        checkpoint.load(path, good)
    assert fragment in str(err.value) and "bad.npz" in str(err.value) and "delete it" in str(err.value)


def _strict_loads(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_files_never_hold_nan_or_infinity(tmp_path):
    # Issue 15: an all-black image fitted exactly has psnr inf, and
    # results.json said `Infinity`, which strict JSON readers reject.
    from gauss2d.io import runrecord  # noqa: PLC0415 (the writer of results.json)

    row = {
        "psnr": float("inf"),
        "ms_ssim": np.float32(1.0),
        "loss": np.float64("nan"),
        "worst": -np.inf,
        "history": np.asarray([1.0, np.inf]),
        "nested": [{"psnr": np.float32("inf")}],
        "name": "black",
    }
    runrecord.write_json(tmp_path / "r.json", row)
    stored = _strict_loads((tmp_path / "r.json").read_text())
    assert stored["psnr"] is None and stored["psnr_nonfinite"] == "inf"
    assert stored["loss"] is None and stored["loss_nonfinite"] == "nan"
    assert stored["worst_nonfinite"] == "-inf" and stored["history"] == [1.0, None]
    assert stored["nested"] == [{"psnr": None, "psnr_nonfinite": "inf"}]
    assert stored["ms_ssim"] == 1.0 and stored["name"] == "black" and "name_nonfinite" not in stored
    back = checkpoint.restore_nonfinite(stored)
    assert back["psnr"] == float("inf") and np.isnan(back["loss"]) and back["worst"] == -np.inf
    assert back["nested"] == [{"psnr": float("inf")}] and "psnr_nonfinite" not in back


def test_checkpoint_manifest_is_strict_json(tmp_path):
    checkpoint.save(tmp_path / "c.npz", {"x": np.zeros(2, np.float32)}, {"best_psnr": float("inf")})
    with np.load(tmp_path / "c.npz") as npz:
        manifest = _strict_loads(npz["__manifest__"].tobytes().decode())
    assert manifest["metadata"] == {"best_psnr": None, "best_psnr_nonfinite": "inf"}


def test_check_writable_refuses_a_file_on_the_way_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(Gauss2dError, match=r"--workdir '.*a_file/w/x': '.*a_file' is a file, not a folder"):
        checkpoint.check_writable(blocker / "w" / "x", "--workdir", folder=True)
    with pytest.raises(Gauss2dError, match="it is a file, not a folder"):
        checkpoint.check_writable(blocker, "--workdir", folder=True)
    checkpoint.check_writable(tmp_path / "new" / "deeper" / "out.g2d")  # missing folders are fine
    checkpoint.check_writable(blocker)  # an existing file may be replaced (the caller asks first)

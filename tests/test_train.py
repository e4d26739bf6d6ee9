"""The training engine on a toy objective: the loop's rules, independent of rendering.

The toy "renders" nothing: its loss pulls a 3-vector towards the target's
mean colour, and it reports a fixed pair count (PAIRS), so a capacity below
it overflows exactly as a too-small pair buffer does. Its extra state counts
the applied steps, which shows that a re-run chunk is not counted twice and
that a skipped step leaves ``extra`` alone. Fits of real images through the
engine are in test_fit.py, test_fit_batch.py and test_qat.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gauss2d.render import RenderStats
from gauss2d.train import engine as train

PAIRS = 700  # what every toy step "needs"
CAP = 0.9  # constrain: the parameters never exceed this


def toy_objective(lr: float = 0.5) -> train.Objective:
    def loss(capacity: int):
        def fn(params, extra, target, mask):
            goal = jnp.mean(target, axis=(0, 1))  # [3]
            mse = jnp.mean((params - goal) ** 2)
            stats = RenderStats(jnp.asarray(PAIRS, jnp.int32), jnp.asarray(capacity < PAIRS))
            return mse, train.Aux(stats, mse, {"gap": jnp.max(jnp.abs(params - goal))})

        return fn

    return train.Objective(
        name="toy",
        loss=loss,
        optimizer=optax.sgd(lr),
        key=(lr,),
        constrain=lambda p: jnp.minimum(p, CAP),
        update_extra=lambda state, psnr, apply: state.extra + apply.astype(jnp.int32),
    )


def fresh_state(objective: train.Objective) -> train.TrainState:
    return train.init_state(jnp.zeros(3, jnp.float32), objective.optimizer, jnp.zeros((), jnp.int32))


def run_one(target, iterations=25, capacity=4096, on_chunk=None, length=10):
    objective = toy_objective()
    chunks = train.image_chunks(objective, length, *target.shape[:2])
    return train.run(
        fresh_state(objective),
        chunks,
        capacity,
        iterations,
        (jnp.asarray(target),),
        objective=objective,
        on_chunk=on_chunk,
    )


def target_of(color) -> np.ndarray:
    return np.broadcast_to(np.asarray(color, np.float32), (4, 5, 3)).copy()


def test_counts_steps_exactly_and_constrains():
    infos = []
    out = run_one(target_of([0.2, 0.5, 1.0]), on_chunk=lambda s, i: infos.append(i[0]))
    assert int(out.state.step) == 25 and int(out.state.extra) == 25
    np.testing.assert_array_equal(out.histories[0]["step"], np.arange(1, 26))
    assert [i["step"] for i in infos] == [10, 20, 25] and infos[-1]["done"]
    assert out.stopped == [None]
    params = np.asarray(out.state.params)
    assert params[0] == pytest.approx(0.2, abs=1e-3) and params[2] == np.float32(CAP)  # 1.0 held at CAP
    assert np.all(np.diff(out.histories[0]["loss"][:5]) < 0)
    gap = out.histories[0]["gap"]  # an objective's own per-step figure comes back in the history
    assert gap.shape == (25,) and gap[0] == pytest.approx(1.0) and gap[-1] == pytest.approx(0.1, abs=1e-6)


def test_overflow_regrows_and_reruns_without_counting_twice():
    reference = run_one(target_of([0.3, 0.3, 0.3]))
    out = run_one(target_of([0.3, 0.3, 0.3]), capacity=256)  # < PAIRS: the first chunk overflows
    assert out.capacity >= PAIRS and not bool(out.state.capacity_overflow)
    assert int(out.state.extra) == 25  # the overflowed chunk's steps were not applied, then re-run
    np.testing.assert_array_equal(out.histories[0]["step"], np.arange(1, 26))
    np.testing.assert_array_equal(np.asarray(out.state.params), np.asarray(reference.state.params))


def test_nan_stops_keeps_the_last_good_state_and_skips_the_callback():
    bad = target_of([0.3, 0.3, 0.3])
    bad[1, 2, 0] = np.nan
    calls = []
    out = run_one(bad, on_chunk=lambda s, i: calls.append(i))
    assert "non-finite TOY loss" in out.stopped[0] and int(out.state.step) == 0
    assert int(out.state.extra) == 0 and np.all(np.asarray(out.state.params) == 0)
    assert calls == []  # nothing new to report: the state is the one before the chunk


def test_caller_stop_names_the_step():
    out = run_one(target_of([0.3, 0.3, 0.3]), on_chunk=lambda s, i: "stop")
    assert out.stopped == ["stopped by the caller at TOY step 10"] and int(out.state.step) == 10


def test_an_image_axis_stops_images_alone():
    objective = toy_objective()
    targets = np.stack([target_of([0.1, 0.2, 0.3]), target_of([0.4, 0.5, 0.6])])
    targets[1, 0, 0, 0] = np.inf
    step = train.make_step(objective, 4096)
    chunk = jax.jit(train.scan_steps(jax.vmap(step, in_axes=(0, 0, None, 0)), 10), donate_argnums=0)
    states = jax.tree_util.tree_map(lambda *x: jnp.stack(x), fresh_state(objective), fresh_state(objective))
    infos = []
    out = train.run(
        states,
        lambda capacity: lambda s, t, total: chunk(s, t, total, None),
        4096,
        25,
        (jnp.asarray(targets),),
        batch=2,
        objective=objective,
        on_chunk=lambda s, i: infos.append(i),
    )
    assert out.stopped[0] is None and "non-finite" in out.stopped[1]
    np.testing.assert_array_equal(np.asarray(out.state.step), [25, 0])
    np.testing.assert_array_equal(out.histories[0]["step"], np.arange(1, 26))
    assert out.histories[1]["step"].size == 0
    assert [i[0]["step"] for i in infos] == [10, 20, 25] and all(i[1]["done"] for i in infos)

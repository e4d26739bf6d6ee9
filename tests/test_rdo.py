"""Rate-aware fine-tuning (D + lambda R), pruning, and the size / quality targets of v2 files."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from codec_helpers import encode_v2, v2_settings

from configs import codec as codec_config
from gauss2d import gaussians, metrics
from gauss2d.codec import decode, rate, v2
from gauss2d.codec.v2.state import init_state
from gauss2d.compress import rdo, targets
from gauss2d.render import render_clamped

H, W = 32, 48


@pytest.fixture(scope="module")
def scene():
    """A small smooth target and Gaussians fitted-looking enough to fine-tune."""
    yy, xx = np.mgrid[0:H, 0:W] / np.array([H, W])[:, None, None]
    image = np.stack([0.5 + 0.4 * np.sin(6 * xx), 0.5 + 0.3 * np.cos(5 * yy), 0.4 + 0.2 * xx * yy], -1)
    rng = np.random.default_rng(0)
    n = 120
    means = rng.uniform(0.03, 0.97, (n, 2)) * [W, H]
    xy = np.arctanh(2.0 * means / [W, H] - 1.0)
    chol = np.abs(rng.normal([2.5, 0.0, 2.5], [0.5, 0.3, 0.5], (n, 3))) - np.asarray([0.5, 0.0, 0.5])
    color = image[means[:, 1].astype(int), means[:, 0].astype(int)] * 0.3
    params = gaussians.CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))
    return image.astype(np.float32), params


def _config(**codec):
    settings = codec_config.get_settings("smoke")
    return settings.replace(log_every=20, codec=dataclasses.replace(settings.codec, qat_steps=40, **codec))


def _file_bits(result):
    return 8 * len(encode_v2(result.params, H, W, result.state, rdo.v2_settings(_config())))


def test_rate_term_lowers_the_bits(scene):
    image, params = scene
    plain = rdo.finetune(image, params, _config(lmbda=0.0, prune_every=0))
    rated = rdo.finetune(image, params, _config(lmbda=0.05, prune_every=0))
    assert np.all(np.isfinite(plain.history["loss"])) and plain.history["loss"].size == 40
    assert _file_bits(rated) < 0.95 * _file_bits(plain)
    # Without a rate term the quantised render gets better than plain quantisation.
    assert plain.psnr > plain.history["psnr"][0]


def test_pruning_keeps_only_survivors(scene):
    image, params = scene
    result = rdo.finetune(image, params, _config(lmbda=1.0, prune_every=10, prune_fraction=0.2))
    n = gaussians.num_gaussians(result.params)
    assert result.pruned > 0 and n == 120 - result.pruned
    decoded = decode(encode_v2(result.params, H, W, result.state, rdo.v2_settings(_config())))
    assert decoded.params.xy.shape == (n, 2)


def test_removal_cost_matches_a_real_removal(scene):
    """The first-order removal cost against re-rendering without the Gaussian."""
    image, params = scene
    settings = v2_settings()
    trainable = rdo.RdoParams(params, rdo._to_log(init_state(params, settings)))
    alive = jnp.ones((120,), jnp.float32)
    target = jnp.asarray(image)
    kw = dict(height=H, width=W, settings=settings, backend="xla", capacity=2**14)
    added, bits = rdo.removal_costs(trainable, alive, target, **kw)
    assert np.all(np.asarray(bits) > 0)

    def sq_error(mask):
        hat = v2.PLUGIN.fake_quantize(params, rdo._from_log(trainable.quant), H, W, settings, "round").params
        hat = hat._replace(color=hat.color * mask[:, None])
        im = render_clamped(hat, H, W)
        return float(jnp.sum((im - target) ** 2))

    base = sq_error(alive)
    exact = np.asarray([sq_error(alive.at[i].set(0.0)) - base for i in range(0, 120, 12)])
    approx = np.asarray(added)[::12]
    # Clamping and overlaps make it approximate; it must rank and size removals usefully.
    assert np.corrcoef(exact, approx)[0, 1] > 0.8, (exact, approx)


def test_removal_bits_charge_the_position_sets_exact_marginal(scene):
    """A Gaussian's bits = its symbols' Laplace bits + log2 binom(C, N) - log2 binom(C, N - 1)."""
    image, params = scene
    settings = v2_settings()
    quant = init_state(params, settings)
    trainable = rdo.RdoParams(params, rdo._to_log(quant))
    alive = jnp.ones((120,), jnp.float32).at[:20].set(0.0)  # 100 live
    kw = dict(height=H, width=W, settings=settings, backend="xla", capacity=2**14)
    _, bits = rdo.removal_costs(trainable, alive, jnp.asarray(image), **kw)
    fq = v2.PLUGIN.fake_quantize(params, quant, H, W, settings, "round")
    symbols = rate.symbol_bits(fq.symbols["covariance"], alive).sum(-1)
    symbols = symbols + rate.symbol_bits(fq.symbols["color"], alive).sum(-1)
    # In float64 (rate.position_bits is float32: its lgamma of ~4e5 cells rounds by ~0.1 bit).
    cells = (W / settings.position_step) * (H / settings.position_step)
    log2_binom = lambda n: (
        (math.lgamma(cells + 1) - math.lgamma(n + 1) - math.lgamma(cells - n + 1)) / math.log(2)
    )  # noqa: E731
    np.testing.assert_allclose(np.asarray(bits - symbols), log2_binom(100) - log2_binom(99), rtol=1e-5)


def test_finetune_returns_the_best_state_not_the_last(scene):
    """A learning rate that wrecks the run: the start (step 0) is returned, and it is what decodes."""
    image, params = scene
    wrecked = rdo.finetune(image, params, _config(lmbda=0.0, prune_every=10, qat_lr=3.0))
    assert wrecked.history["psnr"][-1] < wrecked.history["psnr"][0] - 1.0  # the run did get worse
    assert wrecked.best_step == 0
    assert wrecked.psnr == pytest.approx(float(wrecked.history["psnr"][0]), abs=1e-3)
    good = rdo.finetune(image, params, _config(lmbda=0.0, prune_every=10))
    assert good.best_step > 0 and good.psnr > wrecked.psnr + 5.0


def test_target_bpp_lands_in_the_window(scene):
    _, params = scene
    settings = v2_settings()
    state = init_state(params, settings)
    # 1.0 needs dropping Gaussians (85 header bytes alone are 0.44 bpp); the finest steps give ~7 bpp here.
    for bpp in (1.0, 3.0, 6.0):
        t = targets.to_bpp(params, H, W, state, settings, bpp)
        assert 0.9 * bpp <= 8 * len(t.data) / (H * W) <= bpp, (bpp, t)
        decode(t.data)


def test_target_psnr_is_met_by_the_smallest_found(scene):
    image, params = scene
    settings = v2_settings()
    state = init_state(params, settings)

    def render(p, h, w):
        return render_clamped(p, h, w)

    fine = targets.to_psnr(params, H, W, state, settings, -100.0, image, render)
    finest = encode_v2(params, H, W, targets.scaled_state(state, targets.MIN_SCALE), settings)
    best_possible = float(metrics.psnr(render(decode(finest).params, H, W), image))
    goal = best_possible - 1.0
    t = targets.to_psnr(params, H, W, state, settings, goal, image, render)
    assert t.psnr >= goal
    assert len(t.data) < len(finest)
    assert len(fine.data) <= len(t.data)  # a lower target never needs a bigger file
    with pytest.raises(targets.QualityError, match="out of reach"):
        targets.to_psnr(params, H, W, state, settings, 99.0, image, render)


def test_jax_rate_is_differentiable_in_the_steps(scene):
    _, params = scene
    settings = v2_settings()
    state = init_state(params, settings)

    def bits(log_color_step):
        st = state._replace(color=state.color._replace(scale=jnp.exp(log_color_step)))
        kq = v2.PLUGIN.fake_quantize(params, st, H, W, settings).symbols["color"]
        return rdo.rate.symbol_bits(kq).sum()

    g = jax.grad(bits)(jnp.log(state.color.scale))
    assert np.all(np.asarray(g) < 0)  # coarser colour steps, fewer bits


def test_rd_search_follows_lambda(scene):
    image, params = scene
    settings = v2_settings()
    state = init_state(params, settings)

    def render(p, h, w):
        return render_clamped(p, h, w)

    _, cheap = targets.rd_search(params, H, W, state, settings, 1.0, image, render)
    _, sharp = targets.rd_search(params, H, W, state, settings, 1e-7, image, render)
    _, start = targets.rd_search(params, H, W, state, settings, 1e-7, image, render, factors=(1.0,))
    assert cheap["color_factor"] > 1 and cheap["chol_factor"] > 1  # bits are dear: coarser steps
    # Bits nearly free: the search minimises the distortion of the real file (these
    # Gaussians are not a fit, so a coarser step may happen to lower it too).
    assert sharp["objective"] <= start["objective"] and start["trials"] == 1
    assert cheap["trials"] == sharp["trials"] == 17


def test_rd_search_scales_only_its_groups_and_tries_position_grids(scene):
    image, params = scene
    settings = v2_settings()
    state = init_state(params, settings)

    def render(p, h, w):
        return render_clamped(p, h, w)

    groups = ("color_chroma", "chol_off")
    best, info = targets.rd_search(
        params, H, W, state, settings, 1.0, image, render, groups=groups, position_steps=(0.25, 0.5)
    )
    # Bits are dear: both groups coarser, and only their channels moved.
    assert info["color_chroma_factor"] > 1 and info["chol_off_factor"] > 1
    ratio_color = np.asarray(best.color.scale) / np.asarray(state.color.scale)
    ratio_chol = np.asarray(best.chol.scale) / np.asarray(state.chol.scale)
    chroma = info["color_chroma_factor"]
    np.testing.assert_allclose(ratio_color, [1.0, chroma, chroma], 1e-6)
    np.testing.assert_allclose(ratio_chol, [1.0, info["chol_off_factor"], 1.0], 1e-6)
    assert info["trials"] == 1 + 2 * 8 + 2
    # The position grid is one of those tried, and the file it names is the objective's.
    assert info["position_step"] in (0.125, 0.25, 0.5)
    at = dataclasses.replace(settings, position_step=info["position_step"])
    data = encode_v2(params, H, W, best, at)
    mse = float(jnp.mean((render_clamped(decode(data).params, H, W) - image) ** 2))
    assert info["objective"] == pytest.approx(mse + 8.0 * len(data) / (H * W), rel=1e-6)
    with pytest.raises(ValueError, match="unknown step-search groups"):
        targets.rd_search(params, H, W, state, settings, 1.0, image, render, groups=("colour",))


def test_progress_shows_the_stage_total_across_pruning_segments(scene):
    """Pruning splits the steps into segments; the progress info still counts the whole stage."""
    image, params = scene
    infos = []
    rdo.finetune(
        image,
        params,
        _config(lmbda=1.0, prune_every=10, prune_fraction=0.2),
        on_chunk=lambda state, info: infos.append(dict(info)),
    )
    assert [i["step"] for i in infos] == [10, 20, 30, 40]  # four segments of prune_every steps
    assert all(i["iterations"] == 40 for i in infos)  # not 10, 20, 30, 40 (each segment's end)
    for i in infos:
        assert i["eta_seconds"] == pytest.approx((40 - i["step"]) / i["steps_per_second"])


def test_rate_header_bytes_count_the_v2_headers_struct():
    """rate.HEADER_BYTES is the container's ~17 bytes plus v2's header struct (docs said 68)."""
    from gauss2d.codec.v2.header import HEADER

    assert rate.HEADER_BYTES == 17 + HEADER.size


def test_step_search_keeps_the_fine_tuned_grid(scene):
    """After fine-tuning at codec.position_step, the step search tries no other position grid."""
    from gauss2d import compress

    image, params = scene
    settings = _config(lmbda=0.5, prune_every=0)
    grid = settings.codec.position_step
    settings = settings.replace(
        codec=dataclasses.replace(settings.codec, step_search=True, search_position_steps=(grid * 8,))
    )
    untuned = settings.replace(codec=dataclasses.replace(settings.codec, qat_steps=0))
    plain = compress.compress_image(image, untuned, jax.random.key(0), params=params)
    assert plain.summary["step_search"]["position_step"] == grid * 8  # at this rate weight it pays
    tuned = compress.compress_image(image, settings, jax.random.key(0), params=params)
    assert tuned.summary["qat_best_step"] > 0
    assert tuned.summary["step_search"]["position_step"] == grid
    assert decode(tuned.data).params.xy.shape[0] > 0


def test_size_and_quality_goals_step_past_steps_too_fine_to_encode(scene):
    """Steps so fine that an index stream overflows its alphabet are skipped, not a ValueError."""
    image, params = scene
    settings = v2_settings()
    state = targets.scaled_state(init_state(params, settings), 1.0 / 64)  # x MIN_SCALE: ~2^14 finer
    with pytest.raises(ValueError, match="symbols"):
        encode_v2(params, H, W, targets.scaled_state(state, targets.MIN_SCALE), settings)
    sized = targets.to_bpp(params, H, W, state, settings, 2.0)
    assert 1.8 <= sized.bpp <= 2.0 and decode(sized.data).params.xy.shape[0] > 0
    render = lambda p, h, w: render_clamped(p, h, w)  # noqa: E731
    good = targets.to_psnr(params, H, W, state, settings, 12.0, image, render)  # the scene's finest: ~12.9
    assert good.psnr >= 12.0 and len(good.data) > 0


def test_codec_version_3_fine_tunes_like_v2_and_writes_a_v3_file(scene):
    """codec.version=3: the same rate-aware fine-tuning and step search, a v3 file, fewer bytes."""
    from gauss2d import compress
    from gauss2d.codec import version_of

    image, params = scene
    base = _config(lmbda=0.02, prune_every=10)
    files = {}
    for version in (2, 3):
        run = base.replace(codec=dataclasses.replace(base.codec, version=version))
        result = compress.compress_image(image, run, jax.random.key(0), params=params)
        assert version_of(result.data) == version and result.summary["version"] == version
        decoded = decode(result.data).params
        psnr = float(metrics.psnr(render_clamped(decoded, H, W), jnp.asarray(image)))
        assert psnr == pytest.approx(result.summary["psnr"], abs=1e-4)  # measured from the file
        files[version] = result
    # Same fine-tuning (v3 shares v2's quantisers): v3's compact coding makes the smaller file.
    assert files[3].summary["qat_best_step"] == files[2].summary["qat_best_step"]
    assert len(files[3].data) < len(files[2].data)


def test_finetune_of_a_landscape_then_a_portrait_image(scene):
    """The best-state evaluator is cached per image shape (a portrait after a landscape)."""
    image, params = scene
    run = _config(lmbda=0.02, prune_every=10)
    wide = rdo.finetune(image, params, run)
    xy = jnp.stack([params.xy[:, 1], params.xy[:, 0]], -1)  # the same Gaussians, transposed
    chol = jnp.stack([params.chol[:, 2], params.chol[:, 1], params.chol[:, 0]], -1)
    tall = rdo.finetune(
        np.ascontiguousarray(image.transpose(1, 0, 2)), params._replace(xy=xy, chol=chol), run
    )
    assert wide.best_step > 0 and tall.best_step > 0
    assert tall.psnr == pytest.approx(wide.psnr, abs=1.0)

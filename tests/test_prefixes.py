"""Prefix-weighted fine-tuning of progressive v3 files (gauss2d/compress/prefixes.py)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_rdo import H, W, _config, scene  # noqa: F401  (the fixture)

from gauss2d import compress, metrics
from gauss2d.codec import decode
from gauss2d.codec.v3 import order
from gauss2d.compress import prefixes, rdo
from gauss2d.render import render_clamped


def test_layer_index_cuts_the_live_slots_into_the_encoders_layer_counts():
    alive = np.ones(15, np.float32)
    alive[[2, 7]] = 0.0  # pruned: no layer (index L)
    layer = prefixes.layer_index(alive, 3)
    live = np.flatnonzero(alive)
    assert np.all(layer[[2, 7]] == 3)
    assert [int(np.sum(layer[live] == k)) for k in range(3)] == order.counts(13, 3)
    assert np.all(np.diff(layer[live]) >= 0)  # slot order is layer order
    few = prefixes.layer_index(np.asarray([1, 0, 1], np.float32), 4)
    assert list(few) == [3, 4, 3]


def _layered(base, weight):
    codec = dataclasses.replace(base.codec, version=3, layers=4, prefix_weight=weight, step_search=False)
    return base.replace(codec=codec)


def _prefix_psnrs(data, image):
    out = []
    for k in (1, 2, 3, 4):
        d = decode(data, layers=k)
        out.append(float(metrics.psnr(render_clamped(d.params, H, W), jnp.asarray(image))))
    return out


def test_prefix_weight_trains_the_prefixes_and_the_file_keeps_its_layers(scene):  # noqa: F811
    image, params = scene
    base = _config(lmbda=0.005, prune_every=10).replace(log_every=20)
    plain = compress.compress_image(image, _layered(base, 0.0), jax.random.key(0), params=params)
    weighted = compress.compress_image(image, _layered(base, 0.2), jax.random.key(0), params=params)
    p, w = _prefix_psnrs(plain.data, image), _prefix_psnrs(weighted.data, image)
    # 40 steps on this scene (measured: +0.47, +0.80, +0.19, -0.25 dB for prefixes 1-4).
    assert w[0] > p[0] + 0.2 and w[1] > p[1] + 0.4, (p, w)  # the first prefixes stand alone
    assert w[3] > p[3] - 0.5, (p, w)  # at a small cost to the whole
    assert w[3] == pytest.approx(weighted.summary["psnr"], abs=1e-4)
    with pytest.raises(Exception, match="prefix_weight"):
        rdo.prefix_training(base.replace(codec=dataclasses.replace(base.codec, prefix_weight=-1.0)))

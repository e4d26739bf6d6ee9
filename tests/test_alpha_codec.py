"""The alpha model in a v2 file (codec/v2/alpha.py, table.py): round trip, layers, flag, damage, compress."""

import collections
import dataclasses
import struct
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from codec_helpers import encode_v2, mutate, v2_settings

from gauss2d import gaussians, metrics
from gauss2d.codec import AlphaSettings, CodecError, bits_by_attribute, container, decode
from gauss2d.codec.v2 import alpha as alpha_streams
from gauss2d.codec.v2 import sections
from gauss2d.codec.v2.header import parse_header
from gauss2d.codec.v2.state import init_state
from gauss2d.errors import Gauss2dError
from gauss2d.gaussians import ProjectedAlpha
from gauss2d.render import render, render_clamped

H, W = 40, 56


def _params(n=200, seed=0, h=H, w=W, opacity_sd=2.0):
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.02, 0.98, (n, 2)) * [w, h]
    xy = np.arctanh(2.0 * means / [w, h] - 1.0)
    chol = rng.laplace([0.8, 0.0, 0.8], [0.3, 0.15, 0.3], (n, 3)) + 0.5
    color = rng.uniform(0.0, 1.0, (n, 3))
    opacity = rng.normal(0.0, opacity_sd, (n, 1))
    depth = rng.uniform(-1.0, 1.0, (n, 1))
    return gaussians.CholeskyAlphaParams(
        *(jnp.asarray(a, jnp.float32) for a in (xy, chol, color, opacity, depth))
    )


def _header(data):
    return parse_header(sections.split(data).listed[0])


def _fix_crc(data):
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4])) if len(data) >= 4 else data


def _mutate(data, rng):
    kinds = ("flip", "byte", "truncate", "insert", "delete", "header", "payload")
    return mutate(data, rng, kinds, (5, 35), [(min(len(data) - 5, 100), len(data) - 4)])


def _quantize(params, alpha_settings=None):
    """What a v2 file stores for alpha ``params`` (the settings' initial steps)."""
    settings = v2_settings()
    if alpha_settings is not None:
        settings = dataclasses.replace(settings, alpha=alpha_settings)
    return sections.quantize_v2(params, H, W, init_state(params, settings), settings)


def _tail(data):
    """The inline entries (opacity, depth) after the colour section."""
    return sections.split(data).rest


def _with_original_depth(q, params):
    """The decoder's Gaussians, but composited by the caller's depths (the plain-quantised model)."""
    return q.params._replace(depth=jnp.asarray(np.asarray(params.depth)[q.source]))


def _render(params, h, w, scale=1):
    """Alpha render of raw params at ``scale`` x the fitted frame (means and Sigma^(1/2) scale)."""
    geometry = gaussians.rescale(gaussians.geometry(params), scale) if scale != 1 else params
    params = gaussians.with_alpha(geometry, params.opacity, params.depth) if scale != 1 else params
    proj, opacity, depth = gaussians.project_alpha(params, fitted_height=h * scale, fitted_width=w * scale)
    return render(ProjectedAlpha(*proj, opacity, depth), h * scale, w * scale, background=None, backend="xla")


@pytest.mark.parametrize("n", [1, 7, 300])
def test_round_trip_bit_exact_and_flagged(n):
    params = _params(n, seed=n)
    data = encode_v2(params, H, W)
    assert _header(data).alpha and data[:5] == b"G2D\x00\x02"
    out = decode(data)
    assert isinstance(out.params, gaussians.CholeskyAlphaParams) and (out.height, out.width) == (H, W)
    q = _quantize(params)
    for name, a, b in zip(out.params._fields, out.params, q.params, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (n, a.shape[1]), name
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32), err_msg=name)
    assert encode_v2(params, H, W) == data  # deterministic
    bits = bits_by_attribute(data)
    assert bits["opacity"] > 0 and bits["depth"] > 0
    assert bits["total"] == 8 * len(data) == sum(v for k, v in bits.items() if k != "total")


def test_sum_files_keep_flag_zero_and_no_alpha_section():
    geometry = gaussians.geometry(_params(50))
    data = encode_v2(geometry, H, W)
    assert not _header(data).alpha
    assert _tail(data) == b""
    assert set(bits_by_attribute(data)) == {"header", "positions", "covariance", "color", "total"}
    assert isinstance(decode(data).params, gaussians.CholeskyParams)


def test_opacity_within_half_a_step_and_geometry_as_the_sum_codec():
    params = _params(300, seed=3)
    settings = AlphaSettings(opacity_step=0.2)
    q = _quantize(params, settings)
    raw = np.asarray(params.opacity)[q.source]
    err = np.abs(np.asarray(q.params.opacity) - raw)
    assert err.max() <= 0.1 * (1 + 1e-5)
    plain = sections.quantize_v2(gaussians.geometry(params), H, W, q_state(params), v2_settings())
    for a, b in zip(gaussians.geometry(q.params), plain.params, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def q_state(params):
    return init_state(gaussians.geometry(params), v2_settings())


def test_layers_keep_every_overlapping_pair_in_order():
    params = _params(400, seed=4)
    q = _quantize(params)
    boxes = alpha_streams.footprint_boxes(q.params, H, W)
    depth = np.asarray(params.depth)[q.source, 0]
    rank = np.empty(400, np.int64)
    rank[np.lexsort((q.source, depth))] = np.arange(400)
    live = boxes[:, 2] >= boxes[:, 0]
    meet = (
        (boxes[:, None, 0] <= boxes[None, :, 2])
        & (boxes[None, :, 0] <= boxes[:, None, 2])
        & (boxes[:, None, 1] <= boxes[None, :, 3])
        & (boxes[None, :, 1] <= boxes[:, None, 3])
        & live[:, None]
        & live[None, :]
    )
    i, j = np.nonzero(meet & (rank[:, None] < rank[None, :]))
    assert i.size > 1000  # the test sees many overlapping pairs
    assert np.all(q.alpha.layers[i] < q.alpha.layers[j])
    assert q.alpha.layers.max() < 400


def test_layers_by_hand():
    # Two overlapping Gaussians and one far away; composited order: far (z=-1), b (z=0), a (z=1).
    boxes = np.array([[0, 0, 4, 4], [3, 3, 6, 6], [10, 10, 12, 12], [0, 0, -1, -1]])
    order = np.array([2, 1, 0, 3])  # [3] never counts (empty box)
    np.testing.assert_array_equal(alpha_streams.depth_layers(boxes, order, 16, 16), [1, 0, 0, 0])


@pytest.mark.parametrize("scale", [1, 2])
def test_decoded_render_equals_the_plain_quantised_render(scale):
    """Depth stored as layers changes no pixel: the same image as the quantised model in its true order."""
    params = _params(300, seed=5)
    q = _quantize(params)
    out = decode(encode_v2(params, H, W)).params
    exact = _render(_with_original_depth(q, params), H, W, scale)
    image = _render(out, H, W, scale)
    np.testing.assert_allclose(np.asarray(image), np.asarray(exact), rtol=0, atol=1e-5)
    shuffled = out._replace(
        depth=jnp.asarray(np.random.default_rng(0).permutation(300), jnp.float32)[:, None]
    )
    assert float(jnp.abs(_render(shuffled, H, W, scale) - exact).max()) > 0.05  # the order matters here


def test_decoded_psnr_close_to_the_unquantised_model():
    params = _params(300, seed=6, opacity_sd=1.0)
    target = np.asarray(render_clamped(params, H, W))
    out = decode(encode_v2(params, H, W)).params
    plain = render_clamped(_with_original_depth(_quantize(params), params), H, W)
    decoded = render_clamped(out, H, W)
    assert abs(float(metrics.psnr(decoded, target)) - float(metrics.psnr(plain, target))) < 1e-3
    assert float(metrics.psnr(decoded, target)) > 30.0


def _tail_file(data, tail):
    """``data`` with its alpha section replaced by ``tail`` and the CRC recomputed."""
    return container.pack_table(2, sections.split(data).listed, [tail])


def _flagged(data, change):
    """``data`` with header byte 15 (flags: bit 0 colour by size, bit 1 alpha) replaced by change(byte)."""
    (head, *listed), rest = sections.split(data)
    head = head[:15] + bytes([change(head[15])]) + head[16:]
    return container.pack_table(2, [head, *listed], [rest])


def test_damaged_alpha_sections_give_one_clear_error():
    params = _params(120, seed=7)
    data = encode_v2(params, H, W)
    tail = _tail(data)
    sum_file = encode_v2(gaussians.geometry(params), H, W)
    cases = {
        "without its opacity and depth": _flagged(sum_file, lambda f: f | 2),
        "after the colour section of a sum-model": _flagged(data, lambda f: f & ~2),
        "unknown bits": _flagged(data, lambda f: f | 4),
        "shorter than its": _tail_file(data, tail[:5]),
        "opacity step": _tail_file(data, struct.pack("<ff", 0.0, 0.0) + tail[8:]),
        "alpha section has": _tail_file(data, tail + b"\x00"),
        "alpha depth stream": _tail_file(data, tail[:8] + tail[8 : 9 + tail[8]]),
    }
    for message, bad in cases.items():
        with pytest.raises(CodecError, match=message) as info:
            decode(bad)
        assert "\n" not in str(info.value) and not str(info.value).startswith("corrupt gauss2d file")
    for cut in range(1, len(tail)):  # every truncation of the alpha section
        with pytest.raises(CodecError) as info:
            decode(_tail_file(data, tail[:cut]))
        assert not str(info.value).startswith("corrupt gauss2d file"), (cut, info.value)
    with pytest.raises(CodecError, match="CRC"):
        decode(data[:-6] + data[-5:])


def test_layer_out_of_range_is_refused():
    from gauss2d.codec import streams

    params = _params(30, seed=8)
    data = encode_v2(params, H, W)
    tail = _tail(data)
    opacity_entry = tail[: 9 + tail[8]]  # step, offset, the opacity stream (length < 128: one varint byte)
    bad = opacity_entry + container.join_inline([streams.encode_stream(np.full(30, 30))])
    with pytest.raises(CodecError, match="depth: layer out of"):
        decode(_tail_file(data, bad))


def test_decode_fuzz_alpha():
    files = [encode_v2(_params(60, 9), 24, 32), encode_v2(_params(200, 10), H, W)]
    rng = np.random.default_rng(20261203)
    messages = collections.Counter()
    for data in files:
        for i in range(600):
            kind, mutant = _mutate(data, rng)
            if i % 3 == 0:  # aim at the alpha section: the last bytes before the CRC
                mutant = bytearray(data)
                mutant[len(data) - 5 - rng.integers(0, 40)] = rng.integers(0, 256)
                mutant = bytes(mutant)
            if i % 2:
                mutant = _fix_crc(mutant)
            try:
                out = decode(mutant)
            except CodecError as e:
                assert not str(e).startswith("corrupt gauss2d file:"), (kind, str(e))
                messages[str(e)[:30]] += 1
            else:
                assert i % 2 or mutant == data, kind
                assert all(np.isfinite(np.asarray(a)).all() for a in out.params)
    assert len(messages) > 5, messages


def test_encode_errors():
    params = _params(10)
    with pytest.raises(ValueError, match="non-finite opacity or depth"):
        encode_v2(params._replace(depth=params.depth.at[0, 0].set(jnp.inf)), H, W)
    with pytest.raises(ValueError, match="opacity_step"):
        AlphaSettings(opacity_step=0.0)
    rs = gaussians.init_alpha(gaussians.init_random(jax.random.key(0), 5, "rs"), jax.random.key(1))
    with pytest.raises(NotImplementedError):
        encode_v2(rs, H, W, q_state(params))  # rs: refused, as in the sum codec


def test_compress_image_of_an_alpha_fit_end_to_end():
    from configs import codec as codec_config
    from gauss2d import compress

    base = codec_config.get_settings()
    settings = base.replace(
        model=dataclasses.replace(base.model, blend="alpha", num_points=60),
        optim=dataclasses.replace(base.optim, iterations=20),
        log_every=10,
        codec=dataclasses.replace(base.codec, version=2),
    )
    target = np.asarray(render_clamped(_params(80, seed=11, h=24, w=32, opacity_sd=1.0), 24, 32))
    result = compress.compress_image(target, settings, jax.random.key(0))
    s = result.summary
    assert s["blend"] == "alpha" and "gaussianimage" not in s
    assert _header(result.data).alpha and s["bytes"] == len(result.data)
    assert s["bits"]["opacity"] > 0 and s["bits"]["depth"] > 0
    decoded = decode(result.data).params
    assert isinstance(decoded, gaussians.CholeskyAlphaParams)
    assert abs(s["psnr"] - float(metrics.psnr(render_clamped(decoded, 24, 32), target))) < 1e-4
    assert s["psnr"] > s["fit_psnr"] - 3.0  # plain quantisation costs little at these steps
    with pytest.raises(Gauss2dError, match="codec.version=1 cannot store"):
        v1 = settings.replace(codec=dataclasses.replace(settings.codec, version=1))
        compress.compress_image(target, v1, jax.random.key(0), params=result.params)


def test_alpha_section_bits_match_its_bytes():
    data = encode_v2(_params(100, 12), H, W)
    tail = _tail(data)
    bits = bits_by_attribute(data)
    assert bits["opacity"] + bits["depth"] == 8 * len(tail)
    assert zlib.crc32(data[:-4]) == struct.unpack("<I", data[-4:])[0]


def test_depth_levels_merge_layers_and_still_round_trip():
    params = _params(300, seed=13)
    exact = _quantize(params)
    assert exact.alpha.layers.max() + 1 > 8
    settings = AlphaSettings(depth_levels=8)
    merged = _quantize(params, settings)
    assert merged.alpha.layers.max() == 7
    np.testing.assert_array_equal(
        merged.alpha.layers, exact.alpha.layers * 8 // (exact.alpha.layers.max() + 1)
    )
    data = encode_v2(params, H, W, settings=dataclasses.replace(v2_settings(), alpha=settings))
    np.testing.assert_array_equal(np.asarray(decode(data).params.depth)[:, 0], merged.alpha.layers)
    assert len(data) < len(encode_v2(params, H, W))
    with pytest.raises(ValueError, match="depth_levels"):
        AlphaSettings(depth_levels=-1)


def test_an_alpha_file_at_another_size_is_refused_not_rendered_as_a_sum():
    from gauss2d.render import resolution

    out = decode(encode_v2(_params(20, seed=14), H, W)).params
    with pytest.raises(Gauss2dError, match="model.blend='alpha' at another size is not built"):
        resolution.render_at(out, H, W, 2 * H, 2 * W)


@pytest.mark.slow
def test_codec_cli_encodes_and_decodes_an_alpha_fit(tmp_path):
    import json

    from PIL import Image
    from test_codec_cli import TINY, assert_one_line_error, run

    from gauss2d.io import images as data

    source, out, summary = tmp_path / "crop.png", tmp_path / "crop.g2d", tmp_path / "summary.json"
    data.save_image(source, data.load_image(data.sample_image_path())[60:100, 200:252])
    proc = run(
        "experiments.codec",
        "encode",
        str(source),
        str(out),
        *TINY,
        "--config.model.blend=alpha",
        f"--results={summary}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gaussianimage mode" not in proc.stdout  # version 1 cannot hold the alpha model
    blob = out.read_bytes()
    decoded = decode(blob)
    assert isinstance(decoded.params, gaussians.CholeskyAlphaParams) and _header(blob).alpha
    assert json.loads(summary.read_text())["bytes"] == len(blob)
    png = tmp_path / "decoded.png"
    proc = run("experiments.codec", "decode", str(out), str(png))
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = np.round(np.asarray(render_clamped(decoded.params, 40, 52)) * 255.0).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")), expected)
    proc = run("experiments.codec", "decode", str(out), str(tmp_path / "big.png"), "--scale=2")
    assert_one_line_error(proc, "model.blend='alpha' at another size")

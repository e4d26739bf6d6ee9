"""The test sequences of gauss2d.video.sequences: shapes, determinism, geometry, bounds, errors."""

from __future__ import annotations

import numpy as np
import pytest

from gauss2d.errors import Gauss2dError
from gauss2d.io import images
from gauss2d.video import sequences


@pytest.fixture(scope="module")
def source():
    return images.load_image(images.sample_image_path())  # [256, 384, 3]


@pytest.fixture(scope="module")
def still():
    return sequences.sample_frame(40, 60)


def test_generators_shapes_dtype_bounds_and_determinism(source, still):
    made = {
        "pan": lambda: sequences.pan_zoom(source, 7, 33, 50),
        "fade": lambda: sequences.cross_fade(still, still[::-1].copy(), 5),
        "object": lambda: sequences.moving_object(still, 6),
    }
    shapes = {"pan": (7, 33, 50, 3), "fade": (5, 40, 60, 3), "object": (6, 40, 60, 3)}
    for name, make in made.items():
        seq = make()
        assert seq.shape == shapes[name] and seq.dtype == np.float32, name
        assert seq.min() >= 0.0 and seq.max() <= 1.0, name
        np.testing.assert_array_equal(seq, make(), err_msg=name)
        assert np.abs(np.diff(seq, axis=0)).mean() > 1e-3, f"{name}: the frames do not change"


def test_bilinear_sampling_at_pixel_centres_is_exact_and_interpolates_between():
    rng = np.random.default_rng(0)
    image = rng.random((5, 7, 3)).astype(np.float32)
    rows, cols = np.mgrid[0:5, 0:7] + 0.5
    np.testing.assert_allclose(sequences.sample_bilinear(image, cols, rows), image, atol=1e-7)
    # Half-way between two centres is their mean (an independent formula).
    half = sequences.sample_bilinear(image, np.asarray([2.0]), np.asarray([1.5]))
    np.testing.assert_allclose(half[0], 0.5 * (image[1, 1] + image[1, 2]), atol=1e-6)


def test_pan_without_zoom_is_a_shift_of_the_source():
    # A 400 x 100 source, windows of 50 x 20 at scale 1: room = (400 - 50) / 2 = 175 px, and a pan of
    # 70/175 of it over 8 frames moves the centre 10 px per frame, exactly (no resampling).
    rng = np.random.default_rng(1)
    source = rng.random((100, 400, 3)).astype(np.float32)
    height, width, frames = 20, 50, 8
    fill = min(100 / height, 400 / width)  # scale 1 needs fill * min(Hs/h, Ws/w) = 1
    seq = sequences.pan_zoom(source, frames, height, width, pan=(70 / 175, 0.0), zoom=1.0, fill=1 / fill)
    for k in range(frames - 1):
        np.testing.assert_allclose(seq[k + 1][:, :-10], seq[k][:, 10:], atol=1e-6)
    # And each frame is the source's crop at its window.
    x0 = 200 - 35 - 25  # centre at 200 - 35 for the first frame, minus half the width
    np.testing.assert_allclose(seq[0], source[40:60, x0 : x0 + width], atol=1e-6)


def test_zoom_shrinks_the_window(source):
    seq = sequences.pan_zoom(source, 2, 32, 48, pan=(0.0, 0.0), zoom=2.0)
    # The last frame's centre 16 x 24 is the first frame's centre 8 x 12 magnified 2x: compare by
    # box-averaging the last frame 2x2 against the first frame's central crop.
    last = seq[1].reshape(16, 2, 24, 2, 3).mean((1, 3))
    first_centre = seq[0][8:24, 12:36]
    assert np.abs(last - first_centre).mean() < 0.5 * np.abs(seq[0][8:24, 12:36] - seq[1][8:24, 12:36]).mean()


def test_cross_fade_endpoints_equal_the_sources_and_the_middle_is_the_mean(still):
    b = still[::-1, ::-1].copy()
    seq = sequences.cross_fade(still, b, 5)
    np.testing.assert_array_equal(seq[0], still)
    np.testing.assert_array_equal(seq[-1], b)
    np.testing.assert_allclose(seq[2], 0.5 * (still + b), atol=1e-6)


def test_moving_object_occludes_then_uncovers_the_background(still):
    seq = sequences.moving_object(still, 9, radius=0.2, travel=(0.2, 0.5, 0.8, 0.5))
    h, w = still.shape[:2]
    start = (h // 2, int(0.2 * w))  # the disc's centre in frame 0, far from it at the end
    assert not np.allclose(seq[0][start], still[start])
    np.testing.assert_allclose(seq[-1][start], still[start], atol=1e-6)
    # Far from the path, the background stays exactly as it is.
    np.testing.assert_allclose(seq[:, 0, 0], np.broadcast_to(still[0, 0], (9, 3)), atol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s, i: sequences.pan_zoom(i, 0, 10, 10), "frames=0"),
        (lambda s, i: sequences.pan_zoom(i, 10000, 10, 10), "frames=10000"),
        (lambda s, i: sequences.pan_zoom(i, 64, 8192, 8192), "GiB"),
        (lambda s, i: sequences.pan_zoom(i, 4, 10, 10, zoom=0.5), "zoom=0.5"),
        (lambda s, i: sequences.pan_zoom(i[..., :2], 4, 10, 10), "shape"),
        (lambda s, i: sequences.pan_zoom(i * 2.0, 4, 10, 10), "[0, 1]"),
        (lambda s, i: sequences.cross_fade(s, s[:-1], 4), "one shape"),
        (lambda s, i: sequences.cross_fade(s, s, 1), "frames=1"),
        (lambda s, i: sequences.moving_object(s, 4, radius=0.0), "radius=0.0"),
    ],
)
def test_bad_arguments_name_the_problem(source, still, call, message):
    with pytest.raises(Gauss2dError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call(still, source)


@pytest.mark.kodak
def test_sequences_from_a_kodak_image(kodak_dir):
    image = images.load_image(kodak_dir / "kodim01.png")  # 768 x 512: box-filtered by 2 first
    seq = sequences.pan_zoom(image, 4, 64, 96)
    assert seq.shape == (4, 64, 96, 3) and 0.0 <= seq.min() and seq.max() <= 1.0
    small = sequences.resize_to(image, 64, 96)
    assert sequences.cross_fade(small, seq[0], 3).shape == (3, 64, 96, 3)


def test_named_sequences_have_the_asked_size_and_unknown_names_are_refused():
    for name in sequences.NAMES:
        seq = sequences.named(name, 4, 24, 32)
        assert seq.shape == (4, 24, 32, 3) and seq.dtype == np.float32
        assert 0.0 <= seq.min() and seq.max() <= 1.0
    with pytest.raises(Gauss2dError, match="unknown sequence 'nope'"):
        sequences.named("nope", 4, 24, 32)


def test_hard_cut_switches_scene_at_the_cut_and_checks_it():
    a, b = np.zeros((4, 6, 3), np.float32), np.ones((4, 6, 3), np.float32)
    seq = sequences.hard_cut(a, b, 5, 2)
    assert [float(f.mean()) for f in seq] == [0.0, 0.0, 1.0, 1.0, 1.0]
    for cut in (0, 5):
        with pytest.raises(Gauss2dError, match="cut="):
            sequences.hard_cut(a, b, 5, cut)
    with pytest.raises(Gauss2dError, match="one shape"):
        sequences.hard_cut(a, b[:2], 5, 2)

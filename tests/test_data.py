"""Tests for gauss2d.io.images: image reading, listing, writing and small helpers."""

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from gauss2d.errors import Gauss2dError, ImageError
from gauss2d.io import images as data

RNG = np.random.default_rng(0)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _png16_bytes(samples: np.ndarray) -> bytes:
    """A 16-bit colour PNG built without Pillow (which cannot write one).

    Row y uses filter type y % 5, so every PNG filter is exercised; filtering
    here is vectorised NumPy on the known pixels, independent of the decoder.
    """
    h, w, c = samples.shape
    bpp = 2 * c
    raw = samples.astype(">u2").view(np.uint8).reshape(h, w * bpp).astype(np.int64)
    rows = []
    for y in range(h):
        x = raw[y]
        up = raw[y - 1] if y else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]])
        kind = y % 5
        pred = [0, left, up, (left + up) // 2, _paeth(left, up, upleft)][kind]
        rows.append(bytes([kind]) + ((x - pred) % 256).astype(np.uint8).tobytes())

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    color_type = {2: 4, 3: 2, 4: 6}[c]
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def _load_quiet(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning expected for alpha-free images
        return data.load_image(path)


def test_png_8bit_rgb_exact(tmp_path):
    pixels = RNG.integers(0, 256, (7, 11, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(tmp_path / "a.png")
    image = _load_quiet(tmp_path / "a.png")
    assert image.dtype == np.float32 and image.shape == (7, 11, 3)
    np.testing.assert_allclose(image, pixels / 255.0, atol=1e-7)


def test_png_16bit_gray_keeps_precision(tmp_path):
    pixels = RNG.integers(0, 65536, (5, 9), dtype=np.uint16)
    pixels[0, 0], pixels[0, 1] = 0, 65535
    Image.fromarray(pixels).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    image = _load_quiet(tmp_path / "g16.png")
    assert image.shape == (5, 9, 3)
    for ch in range(3):
        np.testing.assert_allclose(image[..., ch], pixels / 65535.0, atol=1e-7)
    assert image.min() == 0.0 and image.max() == 1.0


@pytest.mark.parametrize("height,width", [(6, 5), (1, 1), (13, 2)])
def test_png_16bit_rgb_keeps_precision(tmp_path, height, width):
    # Pillow itself reads this file at 8 bits (high byte); we must not.
    pixels = RNG.integers(0, 65536, (height, width, 3), dtype=np.uint16)
    (tmp_path / "c16.png").write_bytes(_png16_bytes(pixels))
    image = _load_quiet(tmp_path / "c16.png")
    np.testing.assert_allclose(image, pixels / 65535.0, atol=1e-7)


@pytest.mark.parametrize("channels", [2, 4])  # gray + alpha, RGBA
def test_png_16bit_alpha_dropped_with_warning(tmp_path, channels):
    pixels = RNG.integers(0, 65536, (6, 4, channels), dtype=np.uint16)
    (tmp_path / "c16a.png").write_bytes(_png16_bytes(pixels))
    with pytest.warns(UserWarning, match="c16a.png"):
        image = data.load_image(tmp_path / "c16a.png")
    color = np.broadcast_to(pixels[..., :-1], (6, 4, 3))
    np.testing.assert_allclose(image, color / 65535.0, atol=1e-7)


def test_jpeg_close_to_source(tmp_path):
    # Smooth content so JPEG's loss stays small; check colour order too.
    yy, xx = np.mgrid[0:32, 0:48]
    pixels = np.stack([xx * 5, yy * 7, np.full_like(xx, 40)], -1).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(tmp_path / "a.jpg", quality=95)
    image = _load_quiet(tmp_path / "a.jpg")
    assert image.shape == (32, 48, 3)
    assert np.abs(image - pixels / 255.0).mean() < 0.02


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grayscale_expanded_to_rgb(tmp_path, mode):
    gray = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    if mode == "1":
        gray = np.where(gray > 127, 255, 0).astype(np.uint8)
    Image.fromarray(gray, "L").convert(mode).save(tmp_path / "g.png")
    image = _load_quiet(tmp_path / "g.png")
    assert image.shape == (4, 6, 3)
    for ch in range(3):
        np.testing.assert_allclose(image[..., ch], gray / 255.0, atol=1e-7)


def test_palette_expanded_to_rgb(tmp_path):
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    index = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    im = Image.fromarray(index, "P")
    im.putpalette(palette.reshape(-1).tolist())
    im.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_allclose(_load_quiet(tmp_path / "p.png"), palette[index] / 255.0, atol=1e-7)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_dropped_with_warning_naming_file(tmp_path, mode):
    channels = len(mode)
    pixels = RNG.integers(0, 256, (3, 4, channels), dtype=np.uint8)
    Image.fromarray(pixels, mode).save(tmp_path / "alpha.png")
    with pytest.warns(UserWarning, match="alpha.png"):
        image = data.load_image(tmp_path / "alpha.png")
    color = pixels[..., :-1] / 255.0
    np.testing.assert_allclose(image, np.broadcast_to(color, (3, 4, 3)), atol=1e-7)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="nope.png.*no such file"):
        data.load_image(tmp_path / "nope.png")


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="directory"):
        data.load_image(tmp_path)


def test_text_file_is_not_an_image(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ImageError, match=r"x\.txt.*not a PNG/JPEG"):
        data.load_image(tmp_path / "x.txt")


def test_truncated_png(tmp_path):
    pixels = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "full.png")
    blob = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        data.load_image(tmp_path / "cut.png")


def test_zero_size_image(tmp_path, monkeypatch):
    # Pillow refuses to open a 0x0 file itself; the user still gets an ImageError.
    (tmp_path / "empty.ppm").write_bytes(b"P6\n0 0\n255\n")
    with pytest.raises(ImageError, match="empty.ppm"):
        data.load_image(tmp_path / "empty.ppm")
    # A decoder that did return an empty array is caught by load_image's own check.
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "ok.png")
    monkeypatch.setattr(data, "_decode", lambda path, im: np.zeros((0, 2, 3), np.float32))
    with pytest.raises(ImageError, match="ok.png.*zero size"):
        data.load_image(tmp_path / "ok.png")


def test_errors_are_value_errors():
    # The CLI catches Gauss2dError; callers that catch ValueError still work.
    assert issubclass(ImageError, Gauss2dError) and issubclass(ImageError, ValueError)


def test_list_images_sorted_and_filtered(tmp_path):
    for name in ["b.png", "a.JPG", "c.jpeg", "notes.txt", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()  # a folder with an image suffix is not an image
    assert [p.name for p in data.list_images(tmp_path)] == ["a.JPG", "b.png", "c.jpeg"]


def test_list_images_empty_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ImageError, match=r"no images \(\.png.*in '.*'"):
        data.list_images(tmp_path)


def test_list_images_missing_folder(tmp_path):
    with pytest.raises(ImageError, match="missing_dir"):
        data.list_images(tmp_path / "missing_dir")


def test_save_image_round_trip_clamps_and_rounds(tmp_path):
    image = RNG.uniform(-0.2, 1.2, (5, 8, 3)).astype(np.float32)
    path = tmp_path / "out" / "img.png"
    data.save_image(path, image)
    with Image.open(path) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (8, 5))
    expected = np.round(np.clip(image, 0, 1) * 255) / 255
    np.testing.assert_allclose(data.load_image(path), expected, atol=1e-7)
    assert [p.name for p in path.parent.iterdir()] == ["img.png"]  # no temp file left


def test_save_image_rejects_bad_shape(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        data.save_image(tmp_path / "x.png", np.zeros((4, 4)))


def test_downscale_known_values():
    image = np.arange(5 * 7 * 1, dtype=np.float32).reshape(5, 7, 1)
    out = data.downscale(image, 2)
    # Cropped to 4x6, then each 2x2 block averaged: block (i, j) has top-left
    # value 14i + 2j and mean top-left + (1 + 7 + 8) / 4 = top-left + 4.
    expected = np.array([[14 * i + 2 * j + 4 for j in range(3)] for i in range(2)], np.float32)
    assert out.shape == (2, 3, 1)
    np.testing.assert_allclose(out[..., 0], expected)
    np.testing.assert_array_equal(data.downscale(image, 1), image)


@pytest.mark.parametrize("factor", [0, 2.0, 9])
def test_downscale_bad_factor(factor):
    with pytest.raises(ValueError, match="factor"):
        data.downscale(np.zeros((8, 8, 3)), factor)


@pytest.mark.parametrize("shape,transposed", [((3, 5, 3), False), ((5, 3, 3), True), ((4, 4, 3), False)])
def test_landscape_round_trip(shape, transposed):
    image = RNG.uniform(size=shape)
    land, flag = data.to_landscape(image)
    assert flag == transposed
    assert land.shape[0] <= land.shape[1]
    if transposed:
        np.testing.assert_array_equal(land[1, 2], image[2, 1])
    np.testing.assert_array_equal(data.from_landscape(land, flag), image)


def test_sample_image_loads():
    path = data.sample_image_path()
    assert path.is_file()
    image = _load_quiet(path)
    assert image.shape == (256, 384, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.1

"""All-I Gaussian coding (gauss2d.video.intra): a batched fit, one still file per frame, measured from it."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from configs import codec as codec_config
from gauss2d import compress
from gauss2d.settings import resolve
from gauss2d.video import intra, sequences


@pytest.fixture(scope="module")
def coded():
    frames = sequences.moving_object(sequences.sample_frame(24, 32), 2)
    config = codec_config.get_config("smoke")
    with config.unlocked():
        config.model.num_points = 40
        config.optim.iterations = 20
        config.codec.qat_steps = 10
        config.codec.step_search = False
        config.log_every = 10
    config = resolve(config)
    lines = []
    points = intra.code_all_intra(frames, config, [0.001, 0.2], jax.random.PRNGKey(0), progress=lines.append)
    return frames, config, points, lines


def test_every_frame_is_a_still_file_measured_from_its_bytes(coded):
    frames, _, points, lines = coded
    assert [p.lmbda for p in points] == [0.001, 0.2]
    for point in points:
        assert len(point.frames) == len(point.files) == 2
        for record, data, frame in zip(point.frames, point.files, frames, strict=True):
            assert record.bytes == len(data)
            image, _ = compress.decode_and_render(data)
            psnr = 10 * np.log10(1.0 / np.mean((np.asarray(image, np.float64) - frame) ** 2))
            assert record.psnr == pytest.approx(psnr, abs=1e-3)
        assert point.bytes == sum(len(d) for d in point.files)
        assert point.bpp(24, 32) == pytest.approx(8 * point.bytes / (2 * 24 * 32))
    assert len(lines) == 4 and "frame 1 I" in lines[-1]


def test_a_larger_lambda_gives_smaller_files(coded):
    _, _, (fine, coarse), _ = coded
    assert coarse.bytes < fine.bytes


def test_with_lmbda_copies_the_config(coded):
    _, config, _, _ = coded
    before = float(config.codec.lmbda)
    assert intra.with_lmbda(config, 0.5).codec.lmbda == 0.5
    assert float(config.codec.lmbda) == before

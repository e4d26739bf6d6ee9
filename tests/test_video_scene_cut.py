"""The scene-cut test (video.scene_cut): a hard cut gets an I-frame, a GOP length gives the others."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from test_video_g2v import small_settings

from gauss2d.video import decoder, encoder, g2v, sequences


@pytest.fixture(scope="module")
def cut():
    frames = sequences.named("cut", 4, 24, 32)  # the sample, then from frame 2 on another picture
    settings = small_settings(gop=8)
    return frames, encoder.encode_video(frames, settings, jax.random.PRNGKey(0))


def test_the_cut_sequence_changes_scene_at_its_middle():
    frames = sequences.named("cut", 6, 24, 32)
    assert np.array_equal(frames[0], frames[2]) and np.array_equal(frames[3], frames[5])
    assert np.mean(np.abs(frames[2] - frames[3])) > 0.1


def test_a_hard_cut_gets_an_i_frame_inside_the_gop(cut):
    frames, video = cut
    assert [f.type for f in video.frames] == ["I", "P", "I", "P"]
    assert video.frames[0].reason == "gop"
    assert video.frames[2].reason.startswith("scene cut (")
    assert [e.type for e in g2v.split(video.data).index] == [
        g2v.I_FRAME,
        g2v.P_FRAME,
        g2v.I_FRAME,
        g2v.P_FRAME,
    ]
    # The cut's I-frame is a fresh fit of the new scene: as good as the first scene's I-frame.
    assert video.frames[2].psnr > video.frames[0].psnr - 2.0
    for frame, state in zip(decoder.iter_frames(video.data), video.states, strict=True):
        np.testing.assert_array_equal(frame.state.color, state.color)


def test_random_access_after_a_cut_starts_at_the_cut(cut):
    _, video = cut
    layout = g2v.split(video.data)
    assert g2v.gop_start(layout.index, 3) == 2

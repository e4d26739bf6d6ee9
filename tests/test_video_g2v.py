"""The .g2v file (video: g2v, pcoding, encoder, decoder): closed loop, random access, the layout checks."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from configs import codec as codec_config
from gauss2d import metrics
from gauss2d.codec import budget, container
from gauss2d.codec.container import CodecError
from gauss2d.settings import VideoSettings, resolve
from gauss2d.video import decoder, encoder, g2v, pcoding, sequences
from gauss2d.video.delta import DeltaSteps, PFrameDelta

T, H, W = 5, 24, 32


def small_settings(**video):
    config = codec_config.get_config("smoke")
    with config.unlocked():
        config.model.num_points = 40
        config.optim.iterations = 20
        config.codec.qat_steps = 10
        config.codec.step_search = False
        config.log_every = 10
    fast = dict(gop=3, p_iterations=10, p_motion_warmup=3, p_prune_every=5)
    return resolve(config).replace(video=VideoSettings(**(fast | video)))


@pytest.fixture(scope="module")
def coded():
    frames = sequences.named("pan", T, H, W)
    lines = []
    video = encoder.encode_video(frames, small_settings(), jax.random.PRNGKey(0), progress=lines.append)
    return frames, video, lines


def test_the_decoder_reproduces_the_encoders_reconstruction_bit_for_bit(coded):
    frames, video, _ = coded
    decoded = list(decoder.iter_frames(video.data))
    assert [f.index for f in decoded] == list(range(T))
    for frame, want in zip(decoded, video.states, strict=True):
        for got, expected in zip(frame.state, want, strict=True):
            np.testing.assert_array_equal(got, expected)
    header, images = decoder.decode_video(video.data)
    assert (header.num_frames, header.height, header.width) == (T, H, W)
    for k, record in enumerate(video.frames):  # the PSNR the encoder reports is the decoder's render's
        assert float(metrics.psnr(images[k], frames[k])) == pytest.approx(record.psnr, abs=1e-4)


def test_gop_frames_are_i_frames_and_the_others_p_frames_that_cost_less(coded):
    _, video, lines = coded
    assert [f.type for f in video.frames] == ["I", "P", "P", "I", "P"]
    assert [f.reason for f in video.frames if f.type == "I"] == ["gop", "gop"]
    layout = g2v.split(video.data)
    assert [e.type for e in layout.index] == [0, 1, 1, 0, 1]
    i_bytes = [f.bytes for f in video.frames if f.type == "I"]
    assert max(f.bytes for f in video.frames if f.type == "P") < min(i_bytes)
    assert len(lines) == T and lines[1].startswith("frame 1 P ") and " dB " in lines[1]


def test_frame_bytes_and_overhead_sum_to_the_file(coded):
    _, video, _ = coded
    assert sum(f.bytes for f in video.frames) + video.overhead == len(video.data)
    assert 0 < video.overhead < 100
    s = video.summary()
    assert s["totals"]["bytes"] == len(video.data)
    assert s["mean_bpp"] == pytest.approx(8 * len(video.data) / (T * H * W))
    assert set(s["frames"][0]) >= {"index", "type", "bytes", "psnr", "encode_seconds"}


def test_random_access_starts_at_the_gop_and_does_not_read_earlier_frames(coded):
    _, video, _ = coded
    layout = g2v.split(video.data)
    assert g2v.gop_start(layout.index, 4) == 3 and g2v.gop_start(layout.index, 2) == 0
    # Corrupt frame 1's payload: decoding from 0 fails on its CRC, from frame 3 on it does not read it.
    data = bytearray(video.data)
    data[layout.offsets[1] + 3] ^= 0xFF
    with pytest.raises(CodecError, match="CRC mismatch in frame 1"):
        list(decoder.iter_frames(bytes(data)))
    (frame,) = decoder.iter_frames(bytes(data), start=4)
    np.testing.assert_array_equal(frame.state.means, video.states[4].means)


def test_the_budget_is_checked_from_the_header_before_decoding(coded):
    _, video, _ = coded
    with pytest.raises(budget.MemoryBudgetError, match="memory_limit_gb"):
        decoder.decode_video(video.data, memory_limit_gb=1e-6)
    layout = g2v.split(video.data)
    payloads = [g2v.frame_payload(video.data, layout, k) for k in range(T)]
    # A small file declaring frames of 16000x16000: one frame's render would fit 16 GiB, five kept do not.
    big = g2v.pack(layout.header._replace(height=16000, width=16000), layout.index, payloads)
    assert len(big) < 2000
    with pytest.raises(budget.MemoryBudgetError, match="keeping 5 decoded frames of 16000x16000"):
        decoder.decode_video(big)
    huge = g2v.pack(layout.header._replace(height=60000, width=60000), layout.index, payloads)
    with pytest.raises(budget.MemoryBudgetError, match="5 frames of 60000x60000"):
        next(decoder.iter_frames(huge))


def _rebuilt(data: bytes, record: int, payload: bytes) -> bytes:
    """``data`` with record ``record`` (0 header, 1 index, 2.. frames) replaced, its CRC made valid."""
    records = container.read_records(data, container.PREAMBLE, "record", allow_truncation=False)
    records[record] = payload
    return data[: container.PREAMBLE] + container.pack_records(records)


def test_mutation_fuzz_gives_codec_error_only(coded):
    _, video, _ = coded
    data = video.data
    rng = np.random.default_rng(0)
    records = container.read_records(data, container.PREAMBLE, "record", allow_truncation=False)
    outcomes = {"ok": 0, "error": 0}
    for i in range(2500):
        kind = i % 5
        if kind == 0:  # one flipped bit anywhere
            m = bytearray(data)
            m[rng.integers(len(m))] ^= 1 << int(rng.integers(8))
        elif kind == 1:  # truncated
            m = data[: rng.integers(len(data))]
        elif kind == 2:  # bytes inserted
            pos = int(rng.integers(len(data) + 1))
            m = data[:pos] + rng.bytes(int(rng.integers(1, 5))) + data[pos:]
        else:  # inside one record, with its CRC made valid, so the parsers behind the CRC are hit
            r = int(rng.integers(len(records)))
            p = bytearray(records[r])
            for _ in range(int(rng.integers(1, 4))):
                if kind == 3 and p:
                    p[rng.integers(len(p))] = int(rng.integers(256))
                elif p:
                    del p[rng.integers(len(p))]
            m = _rebuilt(data, r, bytes(p))
        try:
            for _ in decoder.iter_frames(bytes(m), memory_limit_gb=1.0):
                pass
            outcomes["ok"] += 1
        except CodecError as e:
            assert "\n" not in str(e)
            outcomes["error"] += 1
    assert outcomes["error"] > 2000


def test_header_round_trip_and_bounds():
    h = g2v.VideoHeader(256, 384, 16, (30000, 1001), 8, 2, DeltaSteps(0.25, (0.1,) * 3, (0.03125,) * 3))
    back = g2v.parse_header(g2v.pack_header(h))
    assert back._replace(steps=None) == h._replace(steps=None)
    assert back.steps.cov == pytest.approx(h.steps.cov) and back.steps.color_space == "ycbcr"
    assert len(g2v.pack_header(h)) == g2v.HEADER.size == 56
    with pytest.raises(ValueError, match="still_version"):
        g2v.pack_header(h._replace(still_version=9))
    with pytest.raises(CodecError, match="header flags"):
        packed = g2v.pack_header(h)
        g2v.parse_header(packed[:27] + b"\x01" + packed[28:])  # the flags byte
    with pytest.raises(CodecError, match="not a gauss2d file"):
        g2v.split(container.preamble(2) + b"\x00" * 40)  # a still file is not a .g2v file


def test_the_index_refuses_counts_the_bytes_cannot_pay_for():
    entries = [g2v.IndexEntry(0, 10, 640), g2v.IndexEntry(1, 1, 640 + 64)]
    assert g2v.parse_index(g2v.pack_index(entries), 2, 10_000) == entries
    with pytest.raises(CodecError, match="frame 0 Gaussians"):
        g2v.parse_index(g2v.pack_index([g2v.IndexEntry(0, 10, 641)]), 1, 10_000)
    with pytest.raises(CodecError, match="frame 1 Gaussians"):
        g2v.parse_index(g2v.pack_index([entries[0], g2v.IndexEntry(1, 1, 705)]), 2, 10_000)
    with pytest.raises(CodecError, match="first frame must be an I-frame"):
        g2v.parse_index(g2v.pack_index([g2v.IndexEntry(1, 10, 5)]), 1, 10_000)


def _delta(n=30, changed=(1, 4, 7), removed=(2, 9), added=2, seed=0) -> PFrameDelta:
    rng = np.random.default_rng(seed)
    c, a = len(changed), added
    return PFrameDelta(
        n,
        np.asarray([3, -1, 0, 2, -40, 17]),
        np.asarray(changed, np.int64),
        rng.integers(-5, 6, (c, 2)),
        rng.integers(-3, 4, (c, 3)),
        rng.integers(-9, 10, (c, 3)),
        np.asarray(removed, np.int64),
        rng.integers(0, 200, (a, 2)),
        rng.integers(-40, 10, (a, 3)),
        rng.integers(-20, 64, (a, 3)),
    )


@pytest.mark.parametrize(
    "kwargs", [{}, {"changed": (), "added": 0}, {"changed": (), "removed": (), "added": 3}, {"removed": ()}]
)
def test_pframe_payload_round_trip(kwargs):
    delta = _delta(**kwargs)
    payload = pcoding.encode_payload(delta)
    after = delta.num_reference - delta.num_removed + delta.num_added
    back = pcoding.decode_payload(payload, delta.num_reference, after, "frame 1")
    for got, want in zip(back, delta, strict=True):
        np.testing.assert_array_equal(np.asarray(got).reshape(-1), np.asarray(want).reshape(-1))
    with pytest.raises(CodecError, match="the index says"):
        pcoding.decode_payload(payload, delta.num_reference, after + 1, "frame 1")
    with pytest.raises(CodecError, match="unread bytes"):
        pcoding.decode_payload(payload + b"\x00", delta.num_reference, after, "frame 1")

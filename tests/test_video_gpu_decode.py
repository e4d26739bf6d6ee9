"""benchmarks/gpu/video_decode.py (gpu_check's video section): its synthetic file is a valid .g2v file."""

from __future__ import annotations

import numpy as np

from benchmarks.gpu import video_decode
from benchmarks.gpu.plan import Budget
from gauss2d.video import decoder, g2v


def test_the_synthetic_file_decodes_and_its_counts_follow_the_deltas():
    data = video_decode.synthetic_file(32, 48, 200, 3)
    layout = g2v.split(data)
    assert [e.type for e in layout.index] == [g2v.I_FRAME, g2v.P_FRAME, g2v.P_FRAME]
    counts = [f.state.means.shape[0] for f in decoder.iter_frames(data)]
    assert counts == [e.num_gaussians for e in layout.index] == [200, 200, 200]  # -1% + 1% each
    _, images = decoder.decode_video(data)
    assert images.shape == (3, 32, 48, 3) and np.all(np.isfinite(images))
    assert not np.array_equal(images[0], images[1])  # the P-frame changed something


def test_the_section_gives_a_row_per_backend_and_skips_over_budget():
    out = video_decode.run(video_decode.SMOKE, Budget(1000.0, scale=0.1))
    (r,) = out["rows"]
    assert r["fps"] > 0 and r["backend"] == "xla" and not out["skipped"]
    item, measured, target = video_decode.row(r)
    assert "48x32 N=100" in item and "frames/s" in measured
    assert video_decode.run(video_decode.SMOKE, Budget(0.0))["skipped"] == ["N=100 xla"]

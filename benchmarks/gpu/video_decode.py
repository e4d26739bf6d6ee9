"""gpu_check's ``video_decode`` section: frames per second decoding a real ``.g2v`` file at 768x512.

The file is built without training (a decode rate does not depend on how
well the Gaussians fit): the I-frame is N random Gaussians written as a
still v2 file by ``codec.encode``; each P-frame moves every Gaussian by a
small global motion, changes 10% of them, removes 1% and adds 1%, coded
by ``video.pcoding`` and laid out by ``video.g2v``. What is timed is the
decoder's whole path per frame (``video.decoder.iter_frames``: record and
CRC, still plugin or P streams' entropy decoding, ``apply_delta``, then the
clamped render), warm, best of ``repeats``, per render backend.
"""

from __future__ import annotations

import time
import warnings

import jax
import numpy as np

from benchmarks.gpu.plan import Budget, log
from gauss2d import codec, gaussians
from gauss2d.codec import advice
from gauss2d.video import decoder, delta, g2v, pcoding

SECTION = "video_decode"
FULL = dict(height=512, width=768, counts=(10000, 70000), frames=16, backends=("xla", "pallas"), repeats=3)
SMOKE = dict(height=32, width=48, counts=(100,), frames=3, backends=("xla",), repeats=1)
ESTIMATE_S = 30  # per row on one H200 (building the file, compiling the render per bucket, timing)


def synthetic_file(height: int, width: int, n: int, frames: int, seed: int = 0) -> bytes:
    """A valid ``.g2v`` file: one I-frame of ``n`` random Gaussians, then ``frames - 1`` P-frames."""
    rng = np.random.default_rng(seed)
    params = gaussians.init_random(jax.random.key(seed), n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", advice.NotFineTunedWarning)  # untrained on purpose
        still = codec.encode(params, height, width)
    steps = delta.DeltaSteps()
    header = g2v.VideoHeader(height, width, frames, (24, 1), frames, 2, steps)
    header = g2v.parse_header(g2v.pack_header(header))
    _, payload = g2v.still_payload(still)
    frame = decoder.iframe_from_payload(payload, header, 0, n)
    payloads, entries, state = [payload], [g2v.IndexEntry(g2v.I_FRAME, len(payload), n)], frame.state
    for _ in range(1, frames):
        m = state.means.shape[0]
        changed = np.sort(rng.choice(m, m // 10, replace=False))
        rest = np.setdiff1d(np.arange(m), changed)
        removed = np.sort(rng.choice(rest, m // 100, replace=False))
        a = max(1, m // 100)
        d = delta.PFrameDelta(
            m, np.asarray([4, -2, 1, 3, 40, -24]), changed,
            rng.integers(-4, 5, (changed.size, 2)), rng.integers(-2, 3, (changed.size, 3)),
            rng.integers(-3, 4, (changed.size, 3)), removed,
            np.stack([rng.integers(0, width * 8, a), rng.integers(0, height * 8, a)], 1),
            rng.integers(-10, 10, (a, 3)), rng.integers(0, 60, (a, 3)),
        )  # fmt: skip
        p = pcoding.encode_payload(d)
        state = delta.apply_delta(state, d, header.steps, height, width)
        payloads.append(p)
        entries.append(g2v.IndexEntry(g2v.P_FRAME, len(p), int(state.means.shape[0])))
    return g2v.pack(header, entries, payloads)


def decode_fps(data: bytes, backend: str, repeats: int) -> float:
    """Frames per second of decoding and rendering every frame of ``data``, warm, best of ``repeats``."""
    layout = decoder.open_video(data, None)
    h = layout.header

    def once():
        for frame in decoder.iter_frames(data, layout=layout):
            jax.block_until_ready(decoder.render_frame(frame, h.height, h.width, backend))

    once()  # compiles each N bucket
    best = min(_timed(once) for _ in range(repeats))
    return h.num_frames / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(cfg: dict, budget: Budget) -> dict:
    """One row per (N, backend): the file's size and its decode rate."""
    rows, skipped = [], []
    for n in cfg["counts"]:
        data = None
        for backend in cfg["backends"]:
            if budget.left() < ESTIMATE_S * budget.scale:
                skipped.append(f"N={n} {backend}")
                continue
            data = data or synthetic_file(cfg["height"], cfg["width"], n, cfg["frames"])
            fps = decode_fps(data, backend, cfg["repeats"])
            size = f"{cfg['width']}x{cfg['height']}"
            rows.append(dict(size=size, n=n, frames=cfg["frames"], backend=backend, bytes=len(data), fps=fps))
            log(f"video_decode {size} N={n} {backend}: {fps:.1f} frames/s ({len(data)} bytes)")
    return {
        "rows": rows,
        "skipped": skipped,
        "target": "issue 24: >= 30 fps at 384x256 on CPU; reported here",
    }


def row(r: dict) -> tuple[str, str, str]:
    """The section's table row (``benchmarks.gpu.report``)."""
    item = f"{r['size']} N={r['n']} {r['frames']} frames {r['backend']}"
    return item, f"{r['fps']:.1f} frames/s (.g2v decode + render)", ">= 30 fps (issue 24, at 384x256 on CPU)"

"""Decode rate of a real ``.g2v`` file at 384x256 on this CPU, render included (issue 24: >= 30 fps).

    python -m benchmarks.video_decode --num_points=2000 --json=runs/video_decode.json

The first ``--frames`` frames of the pan sequence at 384x256 are encoded by
the ``.g2v`` encoder (``gauss2d.video.encoder``): frame 0 an I-frame of
``--num_points`` Gaussians (a still v2 file's sections), the others
P-frames (configs/video.py's 100 steps; only the decode side is timed). Timed
warm, best of ``--repeats``, with ``gauss2d.video.decoder``:

* I: frame 0's record read (CRC), the still plugin's parse and entropy
  decoding, the render, clamped;
* P: a P-frame's record read, its streams entropy-decoded
  (``pcoding.decode_payload``), ``apply_delta``, the render;
* file: every frame of the file in order (``iter_frames`` + render): frames / seconds.
"""

from __future__ import annotations

import json
import time

import jax
from absl import app, flags

from configs import video as video_config
from gauss2d.settings import resolve
from gauss2d.video import decoder, encoder, g2v, sequences

_NUM_POINTS = flags.DEFINE_integer("num_points", 2000, "Gaussians of the I-frame.")
_ITERATIONS = flags.DEFINE_integer("iterations", 300, "Fit steps.")
_FRAMES = flags.DEFINE_integer("frames", 4, "Frames encoded (1 I, then P).")
_HEIGHT = flags.DEFINE_integer("height", 256, "Frame height.")
_WIDTH = flags.DEFINE_integer("width", 384, "Frame width.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed decodes (best of).")
_JSON = flags.DEFINE_string("json", None, "Write the figures here.")


def best_of(fn, repeats: int) -> float:
    fn()  # compiles
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def encoded_file(frames: int, height: int, width: int, num_points: int, iterations: int) -> bytes:
    """A ``.g2v`` file of the pan sequence: one I-frame, then P-frames (configs/video.py's P settings)."""
    config = video_config.get_config("")
    with config.unlocked():
        config.model.num_points = num_points
        config.optim.iterations = iterations
        config.codec.qat_steps = 50
        config.video.gop = frames  # the P-frames keep configs/video.py's 100 steps: fewer (20) left the
        # camera's 2-3 px per frame at this size to the local deltas, and the scene-cut test coded I-frames
    seq = sequences.named("pan", frames, height, width)
    return encoder.encode_video(seq, resolve(config), jax.random.PRNGKey(0), progress=print).data


def decode_rates(data: bytes, repeats: int) -> dict:
    """I-frame, P-frame and whole-file decode rates (frames per second, render included)."""
    layout = g2v.split(data)
    h = layout.header
    first = decoder.decode_frame(data, layout, 0, None)

    def decode_i():
        frame = decoder.decode_frame(data, layout, 0, None)
        jax.block_until_ready(decoder.render_frame(frame, h.height, h.width))

    def decode_p():
        frame = decoder.decode_frame(data, layout, 1, first.state)
        jax.block_until_ready(decoder.render_frame(frame, h.height, h.width))

    def decode_all():
        for frame in decoder.iter_frames(data, layout=layout):
            jax.block_until_ready(decoder.render_frame(frame, h.height, h.width))

    return {
        "frames": h.num_frames,
        "height": h.height,
        "width": h.width,
        "bytes": len(data),
        "num_gaussians": [e.num_gaussians for e in layout.index],
        "types": [g2v.TYPE_NAMES[e.type] for e in layout.index],
        "i_decode_fps": 1.0 / best_of(decode_i, repeats),
        "p_decode_fps": 1.0 / best_of(decode_p, repeats)
        if layout.index[1:2] and layout.index[1].type
        else None,
        "file_decode_fps": h.num_frames / best_of(decode_all, max(1, repeats // 2)),
    }


def main(argv):
    del argv
    data = encoded_file(_FRAMES.value, _HEIGHT.value, _WIDTH.value, _NUM_POINTS.value, _ITERATIONS.value)
    out = decode_rates(data, _REPEATS.value)
    print(json.dumps(out, indent=1))
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    app.run(main)

"""Decode rate at 384x256 on this CPU: an I-frame file (parse + entropy decode + render) and a P-frame on it.

    python -m benchmarks.video_decode --num_points=2000

Frame 0 of the pan sequence at 384x256 is fitted and coded as a still v2
file; frame 1 is coded as a P-frame on its decoded Gaussians (few steps:
only the decode side is timed here). Timed warm, best of ``--repeats``:

* I: ``compress.decode_and_render`` (parse, entropy decode, render, clamp);
* P: ``delta.apply_delta`` + ``params_from_state`` + render: what a decoder
  does per P-frame once the streams are entropy-decoded (that part is not
  built: no ``.g2v`` yet, so it is not in the figure);

issue 24's target: >= 30 frames/s at 384x256, render included.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from configs import codec as codec_config
from gauss2d import compress, gaussians, render
from gauss2d.codec import decode
from gauss2d.io import images
from gauss2d.settings import resolve
from gauss2d.video import delta as delta_lib
from gauss2d.video import pframe, sequences

_NUM_POINTS = flags.DEFINE_integer("num_points", 2000, "Gaussians of the I-frame.")
_ITERATIONS = flags.DEFINE_integer("iterations", 300, "Fit steps.")
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


def main(argv):
    del argv
    seq = sequences.pan_zoom(images.load_image(images.sample_image_path()), 16, 256, 384)
    config = codec_config.get_config("")
    with config.unlocked():
        config.model.num_points = _NUM_POINTS.value
        config.optim.iterations = _ITERATIONS.value
        config.codec.qat_steps = 50
        config.codec.step_search = False
    first = compress.compress_image(seq[0], resolve(config), jax.random.PRNGKey(0))
    decoded = decode(first.data)
    steps = delta_lib.DeltaSteps(cov_space="log", color_space="ycbcr")
    state = delta_lib.state_from_params(decoded.params, 256, 384, steps)
    p = pframe.code_pframe(
        state, seq[1], steps, pframe.PFrameSettings(iterations=20, log_every=10), jax.random.PRNGKey(1)
    )

    def decode_i():
        image, _ = compress.decode_and_render(first.data)
        jax.block_until_ready(image)

    def decode_p():
        new = delta_lib.apply_delta(state, p.delta, steps, 256, 384)
        params = delta_lib.params_from_state(new, 256, 384, steps)
        jax.block_until_ready(
            render.render_clamped(gaussians.CholeskyParams(*map(jnp.asarray, params)), 256, 384)
        )

    out = {
        "num_gaussians_i": int(decoded.params.xy.shape[0]),
        "num_gaussians_p": int(p.state.means.shape[0]),
        "i_bytes": len(first.data),
        "i_psnr": first.summary["psnr"],
        "i_decode_fps": 1.0 / best_of(decode_i, _REPEATS.value),
        "p_decode_fps": 1.0 / best_of(decode_p, _REPEATS.value),
    }
    print(json.dumps(out, indent=1))
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    app.run(main)

"""What a P-frame costs against an I-frame at the same PSNR, on the pan sequence (estimate; no .g2v yet).

    python -m benchmarks.video_pframe --out=runs/video_rd
    python -m benchmarks.video_rd --out=runs/video_rd --pframe_json=runs/video_rd/pframe.json   # the RD plot

Frame 0 of the pan sequence (``benchmarks.video_rd``'s, same sizes) is coded
as a still v2 file (the I-frame: real bytes); every later frame is a P-frame
on the previous *decoded* frame (``gauss2d.video.pframe``, closed loop), at
each ``--p_lmbdas``. A P-frame's size is the entropy-coded size of its
streams (``delta.stream_bytes``: the still codec's stream coder on the
status, delta and added-Gaussian streams) plus an assumed 24-byte frame
overhead: an estimate until the ``.g2v`` container exists.

The comparison: frames ``--compare`` are also coded as I-frames (their own
fit, one file per ``--i_lmbdas``), and the I-frame bytes at the P-frame's
PSNR are interpolated (log bytes, linear in PSNR; flagged when the P-frame's
PSNR lies outside the I points: then the nearest I point is used, which
overstates the I bytes, and so understates P / I, when the P-frame is below
them). The ratio P / I is what issue 24's target (<= 30%) is about.

Also: the decode rate of the chain (apply the deltas + render, warm) at this size.
Writes ``<out>/pframe.json`` (``pframe_<sequence>.json`` for ``--sequence`` other than pan).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks import video_rd
from benchmarks.video_tables import i_bytes_at
from gauss2d import compress, gaussians, metrics, render
from gauss2d.codec import decode
from gauss2d.io.checkpoint import atomic_write
from gauss2d.train import fit
from gauss2d.video import delta as delta_lib
from gauss2d.video import intra, pframe

_SEQUENCE = flags.DEFINE_string("sequence", "pan", "Which test sequence (benchmarks.video_rd.make_sequence).")
_I_LMBDA = flags.DEFINE_float("i_lmbda", 0.01, "codec.lmbda of the chain's I-frame.")
_P_LMBDAS = flags.DEFINE_list("p_lmbdas", ["0.002", "0.01"], "P-frame lmbda of each chain.")
_P_ITERATIONS = flags.DEFINE_integer("p_iterations", 100, "Fine-tuning steps per P-frame.")
_DEAD_ZONE = flags.DEFINE_float("dead_zone", 1.0, "P-frame dead zone, in steps.")
_DELTA_STEPS = flags.DEFINE_list("delta_steps", ["0.125", "0.05", "0.015625"], "position px, cov, colour.")
_COMPARE = flags.DEFINE_list("compare", ["1", "8", "15"], "Frames also coded as I-frames for the ratio.")
_I_LMBDAS = flags.DEFINE_list("i_lmbdas", ["0.002", "0.01", "0.05"], "lmbdas of the comparison I-frames.")


def code_chain(seq, data_i, steps, settings) -> tuple[list[dict], list[delta_lib.PFrameDelta]]:
    """Frame 0 = the I-frame file, then P-frames to the end; per-frame records and the deltas."""
    h, w = seq.shape[1:3]
    decoded = decode(data_i)
    state = delta_lib.state_from_params(decoded.params, h, w, steps)
    image = render.render_clamped(decoded.params, h, w)
    records = [{"index": 0, "type": "I", "bytes": len(data_i), "psnr": float(metrics.psnr(image, seq[0]))}]
    deltas = []
    for k in range(1, seq.shape[0]):
        result = pframe.code_pframe(state, seq[k], steps, settings, jax.random.PRNGKey(k))
        state = result.state
        deltas.append(result.delta)
        records.append(
            {
                "index": k,
                "type": "P",
                "bytes": result.stream_bytes["total"],
                "stream_bytes": result.stream_bytes,
                "psnr": result.psnr,
                "encode_seconds": result.seconds,
                "changed": result.delta.num_changed,
                "added": result.delta.num_added,
                "removed": result.delta.num_removed,
                "num_gaussians": int(state.means.shape[0]),
                "estimated_bits_training": result.estimated_bits,
            }
        )
        r = records[-1]
        print(
            f"frame {k} P {r['bytes']} bytes {r['psnr']:.2f} dB {r['encode_seconds']:.1f} s "
            f"(changed {r['changed']}, added {r['added']}, removed {r['removed']})",
            flush=True,
        )
    return records, deltas


def decode_rate(data_i, deltas, steps, h, w) -> float:
    """Frames per second of decoding the chain (I parse + render, then apply + render per P), warm."""

    def once():
        decoded = decode(data_i)
        state = delta_lib.state_from_params(decoded.params, h, w, steps)
        jax.block_until_ready(render.render_clamped(decoded.params, h, w))
        for d in deltas:
            state = delta_lib.apply_delta(state, d, steps, h, w)
            params = delta_lib.params_from_state(state, h, w, steps)
            jax.block_until_ready(
                render.render_clamped(gaussians.CholeskyParams(*map(jnp.asarray, params)), h, w)
            )

    once()  # compiles each bucket
    t0 = time.perf_counter()
    once()
    return (len(deltas) + 1) / (time.perf_counter() - t0)


def main(argv):
    del argv
    out_dir = pathlib.Path(video_rd._OUT.value)  # the same folder as video_rd's outputs
    name = _SEQUENCE.value
    seq = video_rd.make_sequence(name, video_rd._FRAMES.value, video_rd._HEIGHT.value, video_rd._WIDTH.value)
    t, h, w = seq.shape[:3]
    still = video_rd.still_settings()
    pos, cov, color = (float(x) for x in _DELTA_STEPS.value)
    t0 = time.perf_counter()
    first = compress.compress_image(seq[0], intra.with_lmbda(still, _I_LMBDA.value), jax.random.PRNGKey(0))
    i_seconds = time.perf_counter() - t0
    header = delta_lib.steps_from_v2_file(first.data)
    steps = delta_lib.DeltaSteps(pos, (cov,) * 3, (color,) * 3, header.cov_space, header.color_space)
    print(f"frame 0 I {len(first.data)} bytes {first.summary['psnr']:.2f} dB {i_seconds:.1f} s", flush=True)
    report = {"frames": t, "height": h, "width": w, "steps": dataclasses.asdict(steps), "chains": {}}
    report["command_settings"] = {"i_lmbda": _I_LMBDA.value, "p_iterations": _P_ITERATIONS.value}
    chain_points = []
    for lm in (float(x) for x in _P_LMBDAS.value):
        settings = pframe.PFrameSettings(lmbda=lm, iterations=_P_ITERATIONS.value, dead_zone=_DEAD_ZONE.value)
        records, deltas = code_chain(seq, first.data, steps, settings)
        records[0]["encode_seconds"] = i_seconds
        total = sum(r["bytes"] for r in records)
        point = {
            "lmbda": lm,
            "bpp": 8.0 * total / (t * h * w),
            "psnr": float(np.mean([r["psnr"] for r in records])),
        }
        point["decode_fps"] = decode_rate(first.data, deltas, steps, h, w)
        chain_points.append(point)
        report["chains"][str(lm)] = {"frames": records, **point, "settings": dataclasses.asdict(settings)}
        print(f"chain lmbda {lm}: {point}", flush=True)
    report["sequence"] = name
    report["chain_points"] = {name: chain_points}

    comparisons = []
    i_lmbdas = [float(x) for x in _I_LMBDAS.value]
    for k in (int(x) for x in _COMPARE.value if int(x) < t):
        fitted = fit.fit_image(seq[k], still, jax.random.fold_in(jax.random.PRNGKey(0), k))
        points = []
        for lm in i_lmbdas:
            r = compress.compress_image(
                seq[k], intra.with_lmbda(still, lm), jax.random.PRNGKey(k), params=fitted.params
            )
            points.append((r.summary["psnr"], r.summary["bytes"]))
        for lm, chain in report["chains"].items():
            p = chain["frames"][k]
            i_bytes, outside = i_bytes_at(points, p["psnr"])
            comparisons.append(
                {
                    "frame": k,
                    "p_lmbda": float(lm),
                    "p_bytes": p["bytes"],
                    "p_psnr": p["psnr"],
                    "i_bytes_at_p_psnr": i_bytes,
                    "ratio": p["bytes"] / i_bytes,
                    "extrapolated": outside,
                    "i_points": points,
                }
            )
            c = comparisons[-1]
            flag = " (extrapolated)" if outside else ""
            print(
                f"frame {k}: P (lmbda {lm}) {c['p_bytes']} bytes at {c['p_psnr']:.2f} dB; I at that PSNR "
                f"{c['i_bytes_at_p_psnr']:.0f} bytes -> P/I {c['ratio']:.3f}{flag}",
                flush=True,
            )
    report["comparisons"] = comparisons
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / ("pframe.json" if name == "pan" else f"pframe_{name}.json")) as f:
        f.write(json.dumps(report, indent=1).encode())


if __name__ == "__main__":
    app.run(main)

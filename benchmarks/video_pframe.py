"""What a P-frame costs against an I-frame at the same PSNR, from real ``.g2v`` files (pan by default).

    python -m benchmarks.video_pframe --out=runs/video_rd
    python -m benchmarks.video_rd --out=runs/video_rd --pframe_json=runs/video_rd/pframe.json   # the RD plot

The sequence (``benchmarks.video_rd``'s, same sizes) is encoded by the
``.g2v`` encoder (``gauss2d.video.encoder``) at each ``--p_lmbdas``: frame 0
an I-frame (a still v2 file's sections), every later frame a P-frame on the
previous *decoded* frame (one GOP; the scene-cut test on). Every size is a
frame's bytes in the written file: its record (length, payload, CRC) and
its index entry; the file's own overhead (preamble, header, index framing)
is reported beside them and is in the bpp.

The comparison: frames ``--compare`` are also coded as I-frames (their own
fit, one still file per ``--i_lmbdas``, plus the 4 + 5 bytes of record
framing and index entry an I-frame takes in a ``.g2v`` file's place of the
still preamble), and the I-frame bytes at the P-frame's PSNR are
interpolated (log bytes, linear in PSNR; flagged when the P-frame's PSNR
lies outside the I points: then the nearest I point is used). The ratio
P / I is issue 24's target (<= 30%).

Also: the decode rate of each file (``video.decoder``: parse, entropy
decoding, apply the deltas, render; warm). Writes ``<out>/pframe.json``
(``pframe_<sequence>.json`` for another ``--sequence``) and the ``.g2v`` files.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
from absl import app, flags

from benchmarks import video_rd
from benchmarks.video_tables import i_bytes_at
from gauss2d import compress
from gauss2d import settings as settings_lib
from gauss2d.codec import container
from gauss2d.io.checkpoint import atomic_write
from gauss2d.train import fit
from gauss2d.video import decoder, encoder, g2v, intra

_SEQUENCE = flags.DEFINE_string("sequence", "pan", "Which test sequence (benchmarks.video_rd.make_sequence).")
_I_LMBDA = flags.DEFINE_float("i_lmbda", 0.01, "codec.lmbda of the chain's I-frame.")
_P_LMBDAS = flags.DEFINE_list("p_lmbdas", ["0.002", "0.01"], "P-frame lmbda of each chain.")
_P_ITERATIONS = flags.DEFINE_integer("p_iterations", 100, "Fine-tuning steps per P-frame.")
_DEAD_ZONE = flags.DEFINE_float("dead_zone", 1.0, "P-frame dead zone, in steps.")
_DELTA_STEPS = flags.DEFINE_list("delta_steps", ["0.125", "0.05", "0.015625"], "position px, cov, colour.")
_COMPARE = flags.DEFINE_list("compare", ["1", "8", "15"], "Frames also coded as I-frames for the ratio.")
# Length varint (2 bytes for 128..16383), CRC (4), and the index entry: type, length and count varints.
IFRAME_FRAMING = 2 + 4 + 1 + 2 + 2
_I_LMBDAS = flags.DEFINE_list("i_lmbdas", ["0.002", "0.01", "0.05"], "lmbdas of the comparison I-frames.")


def video_settings(still, p_lmbda: float, frames: int) -> settings_lib.Settings:
    """The still settings at ``--i_lmbda`` plus one GOP of P-frames at ``p_lmbda`` with the flags' steps."""
    pos, cov, color = (float(x) for x in _DELTA_STEPS.value)
    video = settings_lib.VideoSettings(
        gop=frames, p_lmbda=p_lmbda, p_iterations=_P_ITERATIONS.value, p_dead_zone=_DEAD_ZONE.value,
        step_position=pos, step_cov=cov, step_color=color,
    )  # fmt: skip
    return intra.with_lmbda(still, _I_LMBDA.value).replace(video=video)


def decode_rate(data: bytes, h: int, w: int) -> float:
    """Frames per second of decoding a ``.g2v`` file (every frame parsed, decoded and rendered), warm."""

    def once():
        for frame in decoder.iter_frames(data):
            jax.block_until_ready(decoder.render_frame(frame, h, w))

    once()  # compiles each bucket
    t0 = time.perf_counter()
    once()
    return g2v.split(data).header.num_frames / (time.perf_counter() - t0)


def main(argv):
    del argv
    out_dir = pathlib.Path(video_rd._OUT.value)  # the same folder as video_rd's outputs
    name = _SEQUENCE.value
    seq = video_rd.make_sequence(name, video_rd._FRAMES.value, video_rd._HEIGHT.value, video_rd._WIDTH.value)
    t, h, w = seq.shape[:3]
    still = video_rd.still_settings()
    report = {"frames": t, "height": h, "width": w, "chains": {}}
    report["command_settings"] = {"i_lmbda": _I_LMBDA.value, "p_iterations": _P_ITERATIONS.value}
    chain_points = []
    for lm in (float(x) for x in _P_LMBDAS.value):
        settings = video_settings(still, lm, t)
        video = encoder.encode_video(seq, settings, jax.random.PRNGKey(0), progress=print)
        with atomic_write(out_dir / f"{name}_p{lm:g}.g2v") as f:
            f.write(video.data)
        summary = video.summary()
        point = {"lmbda": lm, "bpp": summary["mean_bpp"], "psnr": summary["mean_psnr"]}
        point["decode_fps"] = decode_rate(video.data, h, w)
        chain_points.append(point)
        report["chains"][str(lm)] = {**summary, **point, "video": dataclasses.asdict(settings.video)}
        print(f"chain lmbda {lm}: {point} totals {summary['totals']}", flush=True)
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
            # In a .g2v file the still preamble (5 bytes) gives way to a record and an index entry.
            in_g2v = r.summary["bytes"] - container.PREAMBLE + IFRAME_FRAMING
            points.append((r.summary["psnr"], in_g2v))
        for lm, chain in report["chains"].items():
            p = chain["frames"][k]
            i_bytes, outside = i_bytes_at(points, p["psnr"])
            comparisons.append(
                {
                    "frame": k,
                    "p_lmbda": float(lm),
                    "p_type": p["type"],  # "I" where the scene-cut test replaced the P-frame
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

"""The video yardstick: H.264 / H.265 / AV1 through PyAV, and all-I Gaussian coding, on the test sequences.

    python -m benchmarks.video_rd --out=runs/video_rd                 # classic codecs + all-I on "pan"
    python -m benchmarks.video_rd --out=runs/video_rd --gaussian=""   # classic codecs only (seconds)
    python -m benchmarks.video_rd --pframe_json=runs/video_rd/pframe.json   # add the I+P chain

For each sequence (``gauss2d.video.sequences``: "pan" over the sample,
"fade" from the sample to its mirror image, "object" over the sample; at
``--height`` x ``--width``, ``--frames`` frames):

* every classic encoder the PyAV FFmpeg build has (``gauss2d.video.classic``:
  x264 and x265 in 4:4:4 and 4:2:0, SVT-AV1 in 4:2:0) at its CRF points:
  bytes of the encoded packets, mean PSNR on RGB 8-bit, encode and decode
  frames per second; missing encoders are listed as skipped;
* for the sequences in ``--gaussian``: every frame fitted (one batched fit)
  and coded as a still v2 ``.g2d`` at each ``--lmbdas`` (``video.intra``);
* BD-rate (``gauss2d.rd.bjontegaard``) of the all-I Gaussian curve and of
  the I+P ``.g2v`` files (``benchmarks.video_pframe``'s JSON, ``--pframe_json``)
  against each classic curve and the all-I curve,
  where the curves overlap in PSNR (otherwise the reason is reported).

Writes ``<out>/video_rd.json`` and one plot per sequence, ``<out>/video_rd_<seq>.png``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only (it prints its config per encoder otherwise)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks.video_tables import bd_table, curve  # noqa: E402
from configs import codec as codec_config  # noqa: E402
from gauss2d import settings as settings_lib  # noqa: E402
from gauss2d.io import images  # noqa: E402
from gauss2d.io.checkpoint import atomic_write  # noqa: E402
from gauss2d.video import classic, intra, sequences  # noqa: E402

_OUT = flags.DEFINE_string("out", "runs/video_rd", "Output folder (JSON and plots).")
_SEQUENCES = flags.DEFINE_list("sequences", ["pan", "fade", "object"], "Sequences for the classic codecs.")
_GAUSSIAN = flags.DEFINE_list("gaussian", ["pan"], "Sequences also coded all-I with the Gaussian codec.")
_FRAMES = flags.DEFINE_integer("frames", 16, "Frames per sequence.")
_HEIGHT = flags.DEFINE_integer("height", 128, "Frame height.")
_WIDTH = flags.DEFINE_integer("width", 192, "Frame width.")
_NUM_POINTS = flags.DEFINE_integer("num_points", 800, "Gaussians per I-frame fit.")
_ITERATIONS = flags.DEFINE_integer("iterations", 300, "Fit steps per frame.")
_QAT_STEPS = flags.DEFINE_integer("qat_steps", 100, "Rate-aware fine-tuning steps per file.")
_LMBDAS = flags.DEFINE_list("lmbdas", ["0.002", "0.01", "0.05"], "codec.lmbda of the all-I points.")
_PFRAME_JSON = flags.DEFINE_list(
    "pframe_json", [], "benchmarks.video_pframe's JSONs: their I+P chain points."
)
_REUSE = flags.DEFINE_string(
    "reuse", None, "An earlier video_rd.json: take its all-I Gaussian curves instead of coding them again."
)


def make_sequence(name: str, frames: int, height: int, width: int) -> np.ndarray:
    """The named test sequence (module docstring), [T, H, W, 3]."""
    if name == "pan":
        return sequences.pan_zoom(images.load_image(images.sample_image_path()), frames, height, width)
    still = sequences.sample_frame(height, width)
    if name == "fade":
        return sequences.cross_fade(still, still[:, ::-1].copy(), frames)
    if name == "object":
        return sequences.moving_object(still, frames)
    raise ValueError(f"unknown sequence {name!r}; expected pan, fade or object")


def still_config():
    """configs/codec.py at this benchmark's scale (no step search: minutes, not hours, on a CPU)."""
    config = codec_config.get_config("")
    with config.unlocked():
        config.model.num_points = _NUM_POINTS.value
        config.optim.iterations = _ITERATIONS.value
        config.codec.qat_steps = _QAT_STEPS.value
        config.codec.step_search = False
        config.log_every = 50
    return config


def still_settings() -> settings_lib.Settings:
    """``still_config()`` resolved: the typed settings the library functions take."""
    return settings_lib.resolve(still_config())


def plot(path: pathlib.Path, title: str, curves: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in curves.items():
        bpp, psnr = curve(points)
        style = "-o" if name.startswith(("gauss", "I+P")) else "--."
        ax.plot(bpp, psnr, style, label=name, linewidth=2 if style == "-o" else 1)
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel (all frames; log scale)")
    ax.set_ylabel("PSNR (dB, RGB, mean over frames)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv):
    del argv
    out_dir = pathlib.Path(_OUT.value)
    t, h, w = _FRAMES.value, _HEIGHT.value, _WIDTH.value
    report = {"frames": t, "height": h, "width": w, "sequences": {}, "skipped": classic.unavailable()}
    chain, reused = {}, {}
    if _REUSE.value:
        reused = json.loads(pathlib.Path(_REUSE.value).read_text())["sequences"]
    for path in _PFRAME_JSON.value:
        chain.update(json.loads(pathlib.Path(path).read_text()).get("chain_points", {}))
    for name in _SEQUENCES.value:
        seq = make_sequence(name, t, h, w)
        points, skipped = classic.sweep(seq)
        report["skipped"].update(skipped)
        curves: dict[str, list[dict]] = {}
        for p in points:
            curves.setdefault(p.method, []).append(dataclasses.asdict(p))
            print(f"{name} {p.method} crf {p.crf}: {p.bpp:.4f} bpp {p.psnr:.2f} dB", flush=True)
        entry = {"classic": curves}
        if name in reused and "gaussian_all_i" in reused[name]:
            for key in ("gaussian_all_i", "gaussian_seconds"):
                entry[key] = reused[name][key]
            entry["gaussian_reused_from"] = _REUSE.value
            entry["bd_rate_all_i_vs"] = bd_table(entry["gaussian_all_i"], curves)
            curves = {**curves, "gaussian all-I (.g2d per frame)": entry["gaussian_all_i"]}
        elif name in _GAUSSIAN.value:
            t0 = time.perf_counter()
            coded = intra.code_all_intra(
                seq,
                still_settings(),
                [float(x) for x in _LMBDAS.value],
                jax.random.PRNGKey(0),
                progress=print,
            )
            rows = [
                {
                    "lmbda": c.lmbda,
                    "bpp": c.bpp(h, w),
                    "psnr": c.psnr,
                    "bytes": c.bytes,
                    "frames": [dataclasses.asdict(f) for f in c.frames],
                    "encode_fps": t / sum(f.encode_seconds for f in c.frames),
                    "decode_fps": t / sum(f.decode_seconds for f in c.frames),
                }
                for c in coded
            ]
            entry["gaussian_all_i"] = rows
            entry["gaussian_seconds"] = time.perf_counter() - t0
            entry["bd_rate_all_i_vs"] = bd_table(rows, curves)
            curves = {**curves, "gaussian all-I (.g2d per frame)": rows}
        if name in chain:
            entry["bd_rate_chain_vs"] = bd_table(chain[name], dict(curves))
            curves = {**curves, "I+P .g2v (real files)": chain[name]}
        report["sequences"][name] = entry
        plot(out_dir / f"video_rd_{name}.png", f"{name}: {t} frames of {w}x{h}", curves)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / "video_rd.json") as f:
        f.write(json.dumps(report, indent=1).encode())
    for name, entry in report["sequences"].items():
        for key in ("bd_rate_all_i_vs", "bd_rate_chain_vs"):
            if key in entry:
                print(name, key, json.dumps(entry[key], indent=1))
    print("skipped:", report["skipped"] or "none")


if __name__ == "__main__":
    app.run(main)

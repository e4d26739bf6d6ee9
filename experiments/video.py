"""Encode a sequence to a ``.g2v`` file (I-frames and P-frames), or decode one to PNG frames.

    python -m experiments.video encode INPUT OUT.g2v [--results=encode.json]
    python -m experiments.video decode OUT.g2v OUT_DIR [--video=out.mp4]
    python -m experiments.video encode pan /tmp/pan.g2v --config=configs/video.py:smoke

INPUT is a folder of frames, a video file (PyAV) or a built-in sequence
name (pan, fade, object, cut). ``--config`` (default configs/video.py) takes
the still codec's keys and the video section (``--config.video.gop=8``,
``--config.video.p_lmbda=0.002``, ...). One progress line per frame:
index, type, bytes, PSNR, seconds. Outputs are written atomically and never
replaced without --overwrite. An error prints one line on stderr and exits
with status 2. The work is gauss2d/video/files.py's.
"""

from __future__ import annotations

import pathlib
import warnings

from absl import app, flags, logging

from experiments import cli
from gauss2d import settings as settings_lib
from gauss2d.compress import decode_render
from gauss2d.errors import Gauss2dError
from gauss2d.io import runrecord
from gauss2d.video import files

_CONFIG = cli.define_config("configs/video.py")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace outputs that exist.")
_RESULTS = flags.DEFINE_string("results", None, "encode: per-frame records, totals and mean bpp (JSON).")
_VIDEO = flags.DEFINE_string("video", None, "decode: also write this video file (PyAV; .mp4, .mkv).")
_MEMORY_LIMIT = flags.DEFINE_float(
    "memory_limit_gb", None, "decode: refuse a file needing more GiB (default: the config's memory_limit_gb)."
)


def encode(source: str, output: pathlib.Path, settings: settings_lib.Settings) -> None:
    progress = lambda line: print(line, flush=True)  # noqa: E731
    video = files.encode_file(source, output, settings, overwrite=_OVERWRITE.value, progress=progress)
    summary = video.summary()
    totals = summary["totals"]
    print(
        f"wrote {output}: {totals['num_frames']} frames ({totals['i_frames']} I, {totals['p_frames']} P), "
        f"{totals['bytes']} bytes, {summary['mean_bpp']:.4f} bpp, mean psnr {summary['mean_psnr']:.2f} dB",
        flush=True,
    )
    if _RESULTS.value:
        runrecord.write_json(
            pathlib.Path(_RESULTS.value), {"input": source, "output": str(output), **summary}
        )


def decode(source: str, output: pathlib.Path, settings: settings_lib.Settings) -> None:
    limit = _MEMORY_LIMIT.value if _MEMORY_LIMIT.value is not None else settings.memory_limit_gb
    video = pathlib.Path(_VIDEO.value) if _VIDEO.value else None
    count, seconds = files.decode_file(
        pathlib.Path(source), output, video_path=video, memory_limit_gb=limit,
        backend=settings.render.backend, overwrite=_OVERWRITE.value,
    )  # fmt: skip
    extra = f" and {video}" if video else ""
    print(f"wrote {count} frames to {output}{extra}: decoded and rendered in {seconds:.2f} s", flush=True)


def main(argv):
    args = argv[1:]
    if len(args) != 3 or args[0] not in ("encode", "decode"):
        raise app.UsageError(f"expected 'encode INPUT OUT.g2v' or 'decode IN.g2v OUT_DIR', got {args}")
    if not flags.FLAGS["verbosity"].present:  # stderr is for one-line errors; --verbosity=0 shows logs
        logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    decode_render.enable_compile_cache(None)  # a later run reuses the compiled programs
    try:
        settings = settings_lib.resolve(cli.load_config(_CONFIG))
        run = encode if args[0] == "encode" else decode
        run(args[1], pathlib.Path(args[2]), settings)
    except (Gauss2dError, OSError, ValueError) as err:  # CodecError is a Gauss2dError
        cli.fail(err)
    except KeyboardInterrupt:
        cli.exit_interrupted()


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)

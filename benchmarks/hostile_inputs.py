"""Small files that ask for a lot (issue 15): peak memory, time, exit code and message of each.

    python -m benchmarks.hostile_inputs --out=runs/hostile                # build + measure
    python -m benchmarks.hostile_inputs --out=runs/hostile --build_only   # just the files

Each case runs in a fresh subprocess under ``/usr/bin/time -v`` (peak RSS)
with a wall-clock limit; the table goes to stdout (and --json). The builders
are also what tests/test_hostile_inputs.py uses, at smaller sizes.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
from absl import app, flags

_OUT = flags.DEFINE_string("out", "runs/hostile", "Folder for the files and the table.")
_BUILD_ONLY = flags.DEFINE_bool("build_only", False, "Write the files, measure nothing.")
_JSON = flags.DEFINE_string("json", None, "Also write the rows here.")
_TIMEOUT = flags.DEFINE_integer("timeout", 600, "Seconds per case.")


def _random_params(n: int, seed: int = 0):
    import jax.numpy as jnp  # noqa: PLC0415 (keep `--help` fast)

    from gauss2d.gaussians import CholeskyParams  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    return CholeskyParams(
        jnp.asarray(rng.uniform(-1, 1, (n, 2)), jnp.float32),
        jnp.asarray(rng.uniform(0.5, 1.5, (n, 3)), jnp.float32),
        jnp.asarray(rng.uniform(0, 1, (n, 3)), jnp.float32),
    )


def large_side_file(side: int, n: int = 8) -> bytes:
    """A valid ~240-byte file of ``n`` Gaussians that declares a side x side image."""
    from gauss2d.codec import encode, format_settings  # noqa: PLC0415

    return encode(_random_params(n), side, side, version=1, settings=format_settings(1, mode="gaussianimage"))


def many_gaussians_file(n: int, height: int = 256, width: int = 256, seed: int = 0) -> bytes:
    """A valid entropy-mode file of ``n`` Gaussians in few bytes (most share a grid cell).

    Built from the format's parts (the encoder's k-means would take minutes
    at n = 2^24): positions, Cholesky and colour indices that are mostly 0.
    """
    from gauss2d.codec import entropy, format_settings, quantized  # noqa: PLC0415
    from gauss2d.codec.v1 import header as v1h  # noqa: PLC0415
    from gauss2d.codec.v1 import quantizer, sections  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    v1 = format_settings(1, mode="entropy")
    header = quantized(_random_params(64, seed), height, width, version=1, settings=v1).header
    header = dataclasses.replace(header, num_gaussians=n, content_crc=0)
    keys = np.cumsum(rng.random(n) < 0.02).astype(np.int64)
    chol = (rng.random((n, 3)) < 0.01).astype(np.int64)
    color = (rng.random((n, header.rvq_stages)) < 0.01).astype(np.int64)
    pos = entropy.encode_positions(keys, quantizer.num_cells(header))
    cov = entropy.symbols_section([(chol[:, c], 2**header.chol_bits) for c in range(3)])
    col = entropy.symbols_section([(color[:, s], header.codebook_size) for s in range(header.rvq_stages)])
    crc = v1h.content_crc(v1h.pack_header(header), keys.astype("<u8"), chol, color)
    header = dataclasses.replace(header, content_crc=crc)
    return sections.pack([v1h.pack_header(header), pos, cov, col])


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def png16_bomb(inflated_mib: int, side: int = 64) -> bytes:
    """A 16-bit RGB PNG declaring side x side whose zlib stream inflates to ``inflated_mib`` MiB."""
    z = zlib.compressobj(9)
    parts = [z.compress(bytes(side * (side * 6 + 1)))]
    zeros = bytes(1 << 20)
    parts += [z.compress(zeros) for _ in range(inflated_mib)]
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def flat_png(width: int, height: int) -> bytes:
    """An 8-bit grey PNG of one colour: a few hundred KB for 9000 x 9000."""
    z = zlib.compressobj(9)
    row = bytes(width + 1)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def build(out: pathlib.Path) -> dict[str, pathlib.Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "side65536.g2d": lambda: large_side_file(65536),
        "side16384.g2d": lambda: large_side_file(16384),
        "n2pow24.g2d": lambda: many_gaussians_file(2**24),
        "bomb16.png": lambda: png16_bomb(1024),
        "flat9000.png": lambda: flat_png(9000, 9000),
    }
    paths = {}
    for name, make in files.items():
        path = out / name
        if not path.exists():
            path.write_bytes(make())
        paths[name] = path
    return paths


_LIB_DECODE = (
    "import sys; from gauss2d.codec import decode, CodecError\n"
    "try:\n    d = decode(open(sys.argv[1], 'rb').read()); print('decoded', d.params.xy.shape)\n"
    "except CodecError as e:\n    print('error:', e, file=sys.stderr); sys.exit(2)\n"
)
_LOAD = (
    "import sys; from gauss2d import data; from gauss2d.errors import ImageError\n"
    "try:\n    print('loaded', data.load_image(sys.argv[1]).shape)\n"
    "except ImageError as e:\n    print('error:', e, file=sys.stderr); sys.exit(2)\n"
)


def cases(paths: dict[str, pathlib.Path], out: pathlib.Path) -> list[tuple[str, list[str]]]:
    py = sys.executable
    decode = [py, "-m", "experiments.codec", "decode", "--overwrite"]
    return [
        ("codec decode side65536", [*decode, str(paths["side65536.g2d"]), str(out / "a.png")]),
        ("codec decode side16384", [*decode, str(paths["side16384.g2d"]), str(out / "b.png")]),
        ("codec decode n2pow24", [*decode, str(paths["n2pow24.g2d"]), str(out / "c.png")]),
        ("library decode n2pow24", [py, "-c", _LIB_DECODE, str(paths["n2pow24.g2d"])]),
        ("load_image bomb16", [py, "-c", _LOAD, str(paths["bomb16.png"])]),
        ("load_image flat9000", [py, "-c", _LOAD, str(paths["flat9000.png"])]),
    ]


def measure(name: str, argv: list[str], timeout: int) -> dict:
    start = time.perf_counter()
    try:
        proc = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True, timeout=timeout)
        rc, err, out = proc.returncode, proc.stderr, proc.stdout
    except subprocess.TimeoutExpired:
        rc, err, out = "timeout", "", ""
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    lines = [ln for ln in err.splitlines() if not ln.startswith("\t") and "Command " not in ln]
    message = (lines[-1] if lines else out.strip().splitlines()[-1] if out.strip() else "").strip()
    return {
        "case": name,
        "exit": rc,
        "peak_gib": round(int(rss.group(1)) / 2**20, 2) if rss else None,
        "seconds": round(time.perf_counter() - start, 1),
        "message": message[:200],
    }


def main(argv):
    del argv
    out = pathlib.Path(_OUT.value)
    paths = build(out)
    for name, path in paths.items():
        print(f"{name}: {path.stat().st_size} bytes")
    if _BUILD_ONLY.value:
        return
    rows = [measure(name, args, _TIMEOUT.value) for name, args in cases(paths, out)]
    print("| case | exit | peak GiB | s | message |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['exit']} | {r['peak_gib']} | {r['seconds']} | {r['message']} |")
    if _JSON.value:
        pathlib.Path(_JSON.value).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    app.run(main)

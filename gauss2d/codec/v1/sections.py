"""Version 1's sections on the container's framed layout: header, positions, covariance, colour.

Each section is framed (id, length, CRC32: ``container.split_framed``). The
attribute sections hold, in entropy mode, the positions as a sorted set of
grid cells (``entropy.encode_positions``) and one adaptive categorical stream
per Cholesky channel and per colour stage; in gaussianimage mode, float16
raw means and fixed-length bit-packed indices.
"""

from __future__ import annotations

import numpy as np

from gauss2d.codec import bitpack, container, entropy, quantize
from gauss2d.codec.container import CodecError
from gauss2d.codec.v1 import header as v1h
from gauss2d.codec.v1.quantizer import Quantized, V1Settings, color_bits, dequantized, grid_width, num_cells
from gauss2d.gaussians import CholeskyParams

SECTION_NAMES = ("header", "positions", "covariance", "color")


def encode_sections(q: Quantized, settings: V1Settings) -> list[bytes]:
    """The four section payloads of ``q``'s file."""
    del settings  # everything the sections need is in the header
    h = q.header
    if h.mode == "entropy":
        pos = entropy.encode_positions(q.positions, num_cells(h))
        cov = entropy.symbols_section([(q.chol_idx[:, c], 2**h.chol_bits) for c in range(3)])
        col = entropy.symbols_section([(q.color_idx[:, s], h.codebook_size) for s in range(h.rvq_stages)])
    else:
        pos = q.positions.astype("<f2").tobytes()
        cov = bitpack.pack_bits(q.chol_idx.reshape(-1), h.chol_bits)
        col = bitpack.pack_bits(q.color_idx.reshape(-1), color_bits(h))
    return [v1h.pack_header(h), pos, cov, col]


def pack(sections: list[bytes]) -> bytes:
    return container.pack_framed(v1h.VERSION, sections)


def split(data: bytes) -> list[bytes]:
    """The four section payloads (frames and CRCs checked)."""
    return [data[slice(*span)] for span in container.split_framed(data, SECTION_NAMES)]


def parse_header(sections: list[bytes]) -> v1h.Header:
    return v1h.parse_header(sections[0])


def _stack_u16(streams: list[np.ndarray]) -> np.ndarray:
    """[S] streams of [N] symbols (< 2^16) -> [N, S] uint16, freeing each stream once copied.

    The entropy decoder returns int64; keeping S of those and their int64
    stack alive at once cost 2 x 8 x S bytes per Gaussian (budget.py).
    """
    out = np.empty((streams[0].shape[0], len(streams)), np.uint16)
    for i in range(len(streams)):
        out[:, i] = streams[i]
        streams[i] = None  # the caller's list no longer keeps the int64 stream alive
    return out


def decode_sections(sections: list[bytes], h: v1h.Header) -> CholeskyParams:
    """The Gaussians of a v1 file whose header ``h`` passed the count and memory checks."""
    n = h.num_gaussians
    pos, cov, col = sections[1:]
    if h.mode == "entropy":
        keys = entropy.decode_positions(pos, n, num_cells(h))
        positions = keys.view("<u8")  # keys >= 0: the same bytes, no copy
        gw = grid_width(h)
        cells = np.stack([keys % gw, keys // gw], axis=-1)
        xy_q = quantize.grid_to_raw_xy(cells, 2.0**h.position_step_log2, h.height, h.width)
        del cells
        # Indices as uint16 (every alphabet is <= 2^16): int64 copies of them
        # were most of a large file's decoding memory (budget.py).
        chol_idx = _stack_u16(entropy.read_symbols_section(cov, n, [2**h.chol_bits] * 3, "covariance"))
        color_idx = _stack_u16(
            entropy.read_symbols_section(col, n, [h.codebook_size] * h.rvq_stages, "color")
        )
    else:
        if len(pos) != 4 * n:
            raise CodecError(f"positions section is {len(pos)} bytes, expected {4 * n}")
        xy16 = positions = np.frombuffer(pos, "<f2").reshape(n, 2)
        if not np.isfinite(xy16).all():
            raise CodecError("positions hold a non-finite value")
        xy_q = xy16.astype(np.float32)
        chol_idx = bitpack.unpack_bits(cov, np.full(3 * n, h.chol_bits), "covariance").reshape(n, 3)
        color_idx = bitpack.unpack_bits(col, np.full(h.rvq_stages * n, color_bits(h)), "color")
        color_idx = color_idx.reshape(n, h.rvq_stages)
        if color_idx.max() >= h.codebook_size:
            raise CodecError(f"colour index {color_idx.max()} >= codebook_size {h.codebook_size}")
    if v1h.content_crc(sections[0], positions, chol_idx, color_idx) != h.content_crc:
        raise CodecError("decoded content does not match its checksum (corrupt entropy-coded data)")
    return dequantized(xy_q, chol_idx, color_idx, h)


def section_bits(data: bytes) -> dict[str, int]:
    """Bits by section, each with its 9-byte frame; "header" also holds magic and version."""
    spans = container.split_framed(data, SECTION_NAMES)
    frame = container.FRAME_BYTES
    out = {"header": 8 * (container.PREAMBLE + frame + spans[0][1] - spans[0][0])}
    for name, (start, end) in zip(SECTION_NAMES[1:], spans[1:], strict=True):
        out[name] = 8 * (frame + end - start)
    return out

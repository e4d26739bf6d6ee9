"""How much memory decoding (and rendering) a gauss2d file costs, known from its header first.

DESIGN.md section 5: the decoder "checks a memory budget from the header
before it allocates (decoding a 300-byte file must not cost gigabytes)". A
valid 241-byte file may declare a 65536 x 65536 image, and a 1 MB one 2^24
Gaussians; every size the decoder allocates for follows from the header
fields (height, width, N, mode) and the file length, so the cost is
estimated from those and compared with a budget before anything that scales
with them exists. Rendering needs one more figure, the pair-buffer capacity,
which depends on where the Gaussians lie: ``check_render`` takes it from the
decoded parameters before the render allocates.

The constants are measured peaks (resource.getrusage / tracemalloc, see
benchmarks/RESULTS.md "hostile_inputs") rounded up, so an estimate is an
upper bound of what the code does today, not a guess at a lower one.
"""

from __future__ import annotations

from typing import Any

from gauss2d import gaussians
from gauss2d.codec import container, versions
from gauss2d.codec.container import CodecError
from gauss2d.codec.v1 import header as v1h
from gauss2d.render import pair_capacity, registry

# Every version's header has height, width and num_gaussians: all a cost here needs.
Header = Any

# As configs/base.py's memory_limit_gb (the fit's limit), so a file a fit
# could have produced on this machine decodes with the defaults.
DEFAULT_MEMORY_LIMIT_GB = 16.0
GIB = 2**30

# Peak bytes per Gaussian of ``codec.decode`` beyond the file: the
# entropy-mode position decoder holds ~8 int64/uint64 arrays of N at once
# (measured 64 B/Gaussian at N = 2^24), the returned float32 parameters are
# 32 B, and their JAX copies 32 more; gaussianimage mode unpacks bits one
# byte per bit (~22 B per Gaussian) plus uint64 indices.
DECODE_BYTES_PER_GAUSSIAN = 160
# The file itself, its ``bytes`` copy and the section slices.
DECODE_BYTES_PER_FILE_BYTE = 4
# Rendering [H, W, 3] float32 (12 B/pixel): the render, its tiled layout and
# clamp, and the 8-bit PNG (measured at 16384 x 16384: 6.4 GiB peak, 25
# B/pixel; 9.4 GiB before save_image converted in blocks of rows).
RENDER_BYTES_PER_PIXEL = 32
# Per Gaussian in the render: projected means / conics / colours, tile keys.
RENDER_BYTES_PER_GAUSSIAN = 128
# Per pair-buffer slot and pixel of its tile: the forward render's per-pair
# weights and products. Measured: rendering 2^24 Gaussians at 256 x 256
# (58.7M slots, 8 x 8 tiles) asked XLA for one 64.6 GB buffer, 17.2 B per
# slot-pixel; rounded up for what else is live.
RENDER_BYTES_PER_PAIR_PIXEL = 24
# Largest file the decoder can accept: every section at its widest for N =
# MAX_GAUSSIANS (gaussianimage mode, 16-bit Cholesky, 8 stages of 4096
# codewords) plus the largest header. A longer file is refused unread.
MAX_FILE_BYTES = (
    container.MAX_GAUSSIANS * (4 + (3 * v1h.MAX_CHOL_BITS + v1h.MAX_STAGES * 12 + 7) // 8)
    + v1h.MAX_STAGES * v1h.MAX_CODEBOOK * 3 * 4
    + 4096
)


class MemoryBudgetError(CodecError):
    """A valid file whose decoding would need more memory than the budget allows."""


def decode_bytes(header: Header, file_bytes: int) -> int:
    """Upper bound of ``codec.decode``'s peak memory for this header, in bytes."""
    per_gaussian = getattr(header, "decode_bytes_per_gaussian", DECODE_BYTES_PER_GAUSSIAN)  # v3: its own
    return per_gaussian * header.num_gaussians + DECODE_BYTES_PER_FILE_BYTE * file_bytes


def render_bytes(height: int, width: int, num_gaussians: int, capacity: int = 0, tile: int = 16) -> int:
    """Upper bound of rendering N Gaussians to [H, W, 3] and writing the PNG, in bytes.

    Args:
      height: image height.
      width: image width.
      num_gaussians: N.
      capacity: pair-buffer slots (0 when not known yet: the header check).
      tile: the backend's tile side in pixels.
    """
    return (
        RENDER_BYTES_PER_PIXEL * height * width
        + RENDER_BYTES_PER_GAUSSIAN * num_gaussians
        + RENDER_BYTES_PER_PAIR_PIXEL * capacity * tile * tile
    )


def check(needed: int, limit_gb: float | None, what: str, flag: str, action: str = "decode") -> None:
    """Raises ``MemoryBudgetError`` naming ``what``, the size and ``flag`` when over the limit.

    Args:
      needed: estimated bytes.
      limit_gb: the budget in GiB; None means no limit.
      what: the thing being decoded, e.g. "'photo.g2d' (65536x65536, 8 Gaussians)".
      flag: how the user raises the limit, e.g. "--memory_limit_gb".
      action: what needs the memory, for the message ("decode", "decode and render").
    """
    if limit_gb is None:
        return
    if not float(limit_gb) > 0:
        raise MemoryBudgetError(f"{flag}={limit_gb} must be > 0")
    if needed > float(limit_gb) * GIB:
        raise MemoryBudgetError(
            f"{what} needs about {needed / GIB:.1f} GiB to {action}, over {flag}={limit_gb:g}: "
            f"raise {flag} if this machine has the memory"
        )


def check_decode(header: Header, file_bytes: int, limit_gb: float | None) -> None:
    """``codec.decode``'s check: raises ``MemoryBudgetError`` naming ``memory_limit_gb`` when over."""
    check(decode_bytes(header, file_bytes), limit_gb, f"a file of {describe(header)}", "memory_limit_gb")


def read_header(data: bytes) -> Header:
    """The validated header of a file of any version (container, CRCs), allocating nothing that scales.

    Raises:
      CodecError: as ``codec.decode`` for a damaged file.
    """
    plugin = versions.for_file(data)
    return plugin.parse_header(plugin.split(bytes(data)))


def describe(header: Header) -> str:
    """'65536x65536, 8 Gaussians' for messages."""
    return f"{header.width}x{header.height}, {header.num_gaussians} Gaussians"


def _tile(backend: str) -> int:
    return registry.lookup(backend).tile or 16


def check_file(data: bytes, limit_gb: float | None, backend: str, what: str, flag: str) -> Header:
    """Header-only check that decoding and rendering ``data`` fit the budget; returns the header.

    Every registered version's header is read through its plugin
    (``versions.for_file``). The pair-buffer check (``check_render``) runs
    once the parameters are decoded.

    Raises:
      CodecError: a damaged file; ``MemoryBudgetError`` over the budget.
    """
    h = read_header(data)
    # Every Gaussian that renders at all touches at least one tile: N slots
    # is a lower bound of the pair buffer, known before decoding.
    pairs = h.num_gaussians if backend != "reference" else 0
    needed = decode_bytes(h, len(data)) + render_bytes(
        h.height, h.width, h.num_gaussians, pairs, _tile(backend)
    )
    check(needed, limit_gb, f"{what} ({describe(h)})", flag, "decode and render")
    return h


def check_render(decoded, limit_gb: float | None, backend: str, what: str, flag: str) -> None:
    """Checks the render of decoded parameters, pair buffer included, before it allocates.

    Args:
      decoded: ``codec.Decoded`` (params, height, width).
      limit_gb, what, flag: as ``check``.
    """
    params, height, width = decoded[:3]
    capacity = pair_capacity(
        gaussians.project(params, fitted_height=height, fitted_width=width), height, width, backend=backend
    )
    n = int(params.xy.shape[0])
    needed = render_bytes(height, width, n, capacity, _tile(backend))
    check(
        needed,
        limit_gb,
        f"{what} ({width}x{height}, {n} Gaussians, {capacity} tile pairs)",
        flag,
        "render",
    )

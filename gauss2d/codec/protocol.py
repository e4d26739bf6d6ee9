"""The protocol every format version implements (one plugin per version, ``versions.py``).

The version-neutral ``encode`` / ``decode`` (``api.py``) and the header
preflight (``budget.py``) only call these operations, so a new version (v3's
layers, the ``.g2v`` video frames) plugs in without touching them:

* ``settings(codec, seed)``: the version's quantiser/coder settings from the
  ``codec`` settings section (every default lives in ``settings.CodecSettings``);
* ``init_state(params, settings)``: the quantisers' initial learnable state;
* ``fake_quantize(params, state, height, width, settings, quant_mode)``: the
  jittable twin of ``quantize`` for training (``FakeQuantized``);
* ``rate(fq, height, width, settings, weights)``: the estimated bits by
  section of a ``FakeQuantized`` (differentiable where the version allows);
* ``quantize(params, height, width, state, settings)``: exactly what the file
  stores (``.params`` is bit for bit what ``decode`` returns);
* ``encode_sections(quantized, settings)``: the payloads of the file's
  sections and entries, in file order, and ``pack(sections) -> bytes``: the
  file on the container layout the version uses;
* ``split(data)``, ``parse_header(sections)``, ``decode_sections(sections,
  header)``: the decoder in three steps, so that the neutral decoder checks
  the header's Gaussian count and memory budget between the second and the
  third, before anything that scales with N is allocated;
* ``section_bits(data)``: bits by section of a valid file (they sum to the file);
* optionally ``select_layers(header, k)``: a layered version's header limited
  to its first k layers (v3; ``api.decode(data, layers=k)``). A layered
  header also has ``layers_read`` and ``num_layers``, and ``num_gaussians``
  counts the layers read, so the count and budget checks see what is decoded.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax

from gauss2d.settings import CodecSettings


class FakeQuantized(NamedTuple):
    """What a version's ``fake_quantize`` returns."""

    params: Any  # dequantised parameters (the caller's order; straight-through gradients)
    symbols: dict[str, jax.Array]  # per section, [N, C] float indices (integer-valued forward)
    penalty: jax.Array  # [] an extra training loss the quantisers need (v1: VQ commitment), else 0


class FormatVersion(Protocol):
    """One file format version, as ``api.encode`` / ``api.decode`` and ``budget`` use it."""

    version: int
    state_type: type
    settings_type: type
    not_finetuned_hint: str  # what ``state=None`` loses, for ``advice.NotFineTunedWarning``

    def settings(self, codec: CodecSettings, seed: int = 0) -> Any: ...

    def init_state(self, params: Any, settings: Any) -> Any: ...

    def fake_quantize(
        self, params: Any, state: Any, height: int, width: int, settings: Any, quant_mode: str = "ste"
    ) -> FakeQuantized: ...

    def rate(
        self, fq: FakeQuantized, height: int, width: int, settings: Any, weights: jax.Array | None = None
    ) -> dict[str, jax.Array]: ...

    def quantize(self, params: Any, height: int, width: int, state: Any, settings: Any) -> Any: ...

    def encode_sections(self, quantized: Any, settings: Any) -> list[bytes]: ...

    def pack(self, sections: list[bytes]) -> bytes: ...

    def split(self, data: bytes) -> Any: ...

    def parse_header(self, sections: Any) -> Any: ...

    def decode_sections(self, sections: Any, header: Any) -> Any: ...

    def section_bits(self, data: bytes) -> dict[str, int]: ...

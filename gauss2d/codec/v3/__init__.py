"""Format version 3 (compact header, one coder per layer, context models, progressive layers) as a plugin.

Training reuses v2's quantisers: ``fake_quantize`` is v2's on the state
rounded to float16 (``state.round_state_jax``), with v3's per-Gaussian
position precision; ``rate`` is v3's own estimate (``v3/fake.py``: its
layers, contexts and framing), so rate-aware fine-tuning
(gauss2d/compress/rdo.py) works with version 3; ``quantize`` accepts a
``V3State`` or a ``V2State``.
"""

from __future__ import annotations

import dataclasses

from gauss2d.codec.v2 import fake as v2_fake
from gauss2d.codec.v2 import state as v2_state
from gauss2d.codec.v3 import fake as v3_fake
from gauss2d.codec.v3 import sections
from gauss2d.codec.v3.header import VERSION, HeaderV3
from gauss2d.codec.v3.sections import QuantizedV3
from gauss2d.codec.v3.state import V3Settings, V3State, round_state_jax
from gauss2d.settings import CodecSettings


class Version3:
    """The v3 plugin: the container's records layout (header record, then the layers)."""

    version = VERSION
    state_type = V3State
    settings_type = V3Settings
    not_finetuned_hint = "Without state= the steps are the settings' initial ones, not learned."

    def settings(self, codec: CodecSettings, seed: int = 0) -> V3Settings:
        del seed  # deterministic initial state
        return V3Settings.from_codec(codec)

    def init_state(self, params, settings: V3Settings) -> V3State:
        return V3State(*v2_state.init_state(params, settings.base))

    def fake_quantize(self, params, quant_state, height, width, settings, quant_mode="ste"):
        rounded = round_state_jax(quant_state)
        return v2_fake.fake_quantize(params, rounded, height, width, settings.base, quant_mode)

    def rate(self, fq, height, width, settings, weights=None):
        return v3_fake.rate_bits(fq, height, width, settings, weights)

    def quantize(self, params, height, width, quant_state, settings) -> QuantizedV3:
        return sections.quantize_v3(params, height, width, quant_state, settings)

    def encode_sections(self, quantized: QuantizedV3, settings: V3Settings) -> list[bytes]:
        return sections.encode_records(quantized, settings)

    def pack(self, payloads: list[bytes]) -> bytes:
        return sections.pack(payloads)

    def split(self, data: bytes) -> list:
        return sections.split(data)

    def parse_header(self, split: list) -> HeaderV3:
        return sections.read_header(split)

    def select_layers(self, h: HeaderV3, layers: int) -> HeaderV3:
        """The header limited to the first ``layers`` layers (of those present)."""
        return dataclasses.replace(h, layers_present=min(layers, h.layers_read))

    def decode_sections(self, split: list, h: HeaderV3):
        return sections.decode(split, h)

    def section_bits(self, data: bytes) -> dict[str, int]:
        return sections.section_bits(data)


PLUGIN = Version3()

__all__ = ["PLUGIN", "HeaderV3", "QuantizedV3", "V3Settings", "V3State", "Version3"]

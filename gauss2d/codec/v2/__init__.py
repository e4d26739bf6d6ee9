"""Format version 2 (scalar colours, stored models, rate-aware fine-tuning) as a ``FormatVersion`` plugin."""

from __future__ import annotations

from gauss2d.codec.v2 import fake, header, sections, state
from gauss2d.codec.v2.header import HeaderV2
from gauss2d.codec.v2.sections import QuantizedV2, Sections
from gauss2d.codec.v2.state import AlphaSettings, V2Settings, V2State
from gauss2d.settings import CodecSettings


class Version2:
    """The v2 plugin: the container's table layout holding v2's stream table (``table.py``)."""

    version = header.VERSION
    state_type = V2State
    settings_type = V2Settings
    not_finetuned_hint = "Without state= the steps are the settings' initial ones, not learned."

    def settings(self, codec: CodecSettings, seed: int = 0) -> V2Settings:
        del seed  # v2's initial state is deterministic without a key
        return V2Settings.from_codec(codec)

    def init_state(self, params, settings: V2Settings) -> V2State:
        return state.init_state(params, settings)

    def fake_quantize(self, params, quant_state, height, width, settings, quant_mode="ste"):
        return fake.fake_quantize(params, quant_state, height, width, settings, quant_mode)

    def rate(self, fq, height, width, settings, weights=None):
        return fake.rate_bits(fq, height, width, settings, weights)

    def quantize(self, params, height, width, quant_state, settings) -> QuantizedV2:
        return sections.quantize_v2(params, height, width, quant_state, settings)

    def encode_sections(self, quantized: QuantizedV2, settings: V2Settings) -> list[bytes]:
        return sections.encode_sections(quantized, settings)

    def pack(self, payloads: list[bytes]) -> bytes:
        return sections.pack(payloads)

    def split(self, data: bytes) -> Sections:
        return sections.split(data)

    def parse_header(self, split: Sections) -> HeaderV2:
        return sections.read_header(split)

    def decode_sections(self, split: Sections, h: HeaderV2):
        return sections.decode_sections(split, h)

    def section_bits(self, data: bytes) -> dict[str, int]:
        return sections.section_bits(data)


PLUGIN = Version2()

__all__ = ["PLUGIN", "AlphaSettings", "HeaderV2", "QuantizedV2", "V2Settings", "V2State", "Version2"]

"""Format version 1 (GaussianImage's quantisers, better entropy coding) as a ``FormatVersion`` plugin."""

from __future__ import annotations

from gauss2d.codec.v1 import fake, header, quantizer, sections
from gauss2d.codec.v1.header import Header
from gauss2d.codec.v1.quantizer import Quantized, V1Settings, V1State
from gauss2d.settings import CodecSettings


class Version1:
    """The v1 plugin: framed sections (header, positions, covariance, colour), each with its CRC."""

    version = header.VERSION
    state_type = V1State
    settings_type = V1Settings
    not_finetuned_hint = (
        "Without state= the colour codebooks are fitted here by k-means, so a "
        "fine-tuning's codebooks are not used (1.5 dB in issue 16)."
    )

    def settings(self, codec: CodecSettings, seed: int = 0) -> V1Settings:
        return V1Settings.from_codec(codec, seed)

    def init_state(self, params, settings: V1Settings, key=None) -> V1State:
        return quantizer.init_state(params, settings, key)

    def fake_quantize(self, params, state, height, width, settings, quant_mode="ste"):
        return fake.fake_quantize(params, state, height, width, settings, quant_mode)

    def rate(self, fq, height, width, settings, weights=None):
        return fake.rate_bits(fq, height, width, settings, weights)

    def quantize(self, params, height, width, state, settings) -> Quantized:
        return quantizer.quantize_params(params, height, width, state, settings)

    def encode_sections(self, quantized: Quantized, settings: V1Settings) -> list[bytes]:
        return sections.encode_sections(quantized, settings)

    def pack(self, payloads: list[bytes]) -> bytes:
        return sections.pack(payloads)

    def split(self, data: bytes) -> list[bytes]:
        return sections.split(data)

    def parse_header(self, payloads: list[bytes]) -> Header:
        return sections.parse_header(payloads)

    def decode_sections(self, payloads: list[bytes], h: Header):
        return sections.decode_sections(payloads, h)

    def section_bits(self, data: bytes) -> dict[str, int]:
        return sections.section_bits(data)


PLUGIN = Version1()

__all__ = ["PLUGIN", "Header", "Quantized", "V1Settings", "V1State", "Version1"]

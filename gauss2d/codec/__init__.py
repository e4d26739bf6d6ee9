"""The file format of fitted Gaussians: one container, one plugin per format version.

``encode(params, height, width, version=2) -> bytes`` and ``decode(bytes) ->
Decoded`` are version-neutral (``api.py``); ``container.py`` owns the magic,
version byte, section layouts, CRCs and bounds; ``versions.py`` maps each
version byte to its plugin (``v1/``, ``v2/``, ``v3/``) behind ``protocol.FormatVersion``;
``budget.py`` is the header preflight for every version. This package
imports only ``gaussians``, ``render``, ``settings`` and ``errors``; the
workflow that fine-tunes, encodes and measures (``gauss2d.compress``) sits
above it (docs/codec.md).
"""

from gauss2d.codec.advice import NotFineTunedWarning
from gauss2d.codec.api import (
    Decoded,
    bits_by_attribute,
    decode,
    encode,
    fake_quantize,
    format_settings,
    init_state,
    quantize_for_encoding,
    quantized,
    version_of,
)
from gauss2d.codec.container import CodecError
from gauss2d.codec.protocol import FakeQuantized, FormatVersion
from gauss2d.codec.v1 import V1Settings, V1State
from gauss2d.codec.v2 import AlphaSettings, V2Settings, V2State
from gauss2d.codec.v3 import V3Settings, V3State
from gauss2d.codec.versions import VERSIONS

__all__ = [
    "VERSIONS",
    "AlphaSettings",
    "CodecError",
    "Decoded",
    "FakeQuantized",
    "FormatVersion",
    "NotFineTunedWarning",
    "V1Settings",
    "V1State",
    "V2Settings",
    "V2State",
    "V3Settings",
    "V3State",
    "bits_by_attribute",
    "decode",
    "encode",
    "fake_quantize",
    "format_settings",
    "init_state",
    "quantized",
    "quantize_for_encoding",
    "version_of",
]

"""The file format of fitted Gaussians: quantisers, entropy coding, bitstream, encode / decode.

``encode(params, height, width) -> bytes`` and ``decode(bytes) -> Decoded``;
see ``codec.py`` for the modes and ``bitstream.py`` for the file layout.
This package imports only ``gaussians`` and ``errors``; the workflow that
fine-tunes, encodes and measures (``gauss2d.compress``) sits above it
(docs/codec.md).
"""

from gauss2d.codec.advice import NotFineTunedWarning
from gauss2d.codec.bitstream import CodecError
from gauss2d.codec.codec import (
    CodecSettings,
    CodecState,
    Decoded,
    bits_by_attribute,
    decode,
    encode,
    fake_quantize,
    init_codec_state,
    quantize_for_encoding,
)

__all__ = [
    "CodecError",
    "CodecSettings",
    "CodecState",
    "Decoded",
    "NotFineTunedWarning",
    "bits_by_attribute",
    "decode",
    "encode",
    "fake_quantize",
    "init_codec_state",
    "quantize_for_encoding",
]

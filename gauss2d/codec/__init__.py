"""Compression of fitted Gaussians: quantisers, entropy coding, file format.

``encode(params, height, width) -> bytes`` and ``decode(bytes) -> Decoded``;
see ``codec.py`` for the modes and ``bitstream.py`` for the file layout.
``qat.py`` fine-tunes fitted Gaussians with the quantisers in the loop, and
``compress.py`` runs fit, fine-tuning, encoding and measurement for one image
(docs/codec.md).
"""

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
    "bits_by_attribute",
    "decode",
    "encode",
    "fake_quantize",
    "init_codec_state",
    "quantize_for_encoding",
]

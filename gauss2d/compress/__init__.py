"""The compression workflow above the file format (``gauss2d.codec``).

* ``qat``: quantisation-aware fine-tuning, an objective for the training
  engine (``gauss2d.train``), with the codec's fake quantisers in the loop.
* ``image``: one image: fit (unless given), prune, fine-tune, encode,
  decode, measure (``compress_image``); ``decode_and_render``.
* ``params``: your own fitted Gaussians into a file with plain keyword
  arguments (``compress_params``).
* ``dataset``: a folder of images into a work directory (what
  ``experiments.compress`` and ``experiments.rd_sweep`` run).

Every rate is measured from the bytes of the written file (DESIGN.md section 5).
"""

from gauss2d.compress.image import (
    CompressResult,
    compress_image,
    decode_and_render,
    file_summary,
    prune_inactive,
)
from gauss2d.compress.params import codec_config, compress_params
from gauss2d.compress.qat import QatResult, finetune, settings_from_config

__all__ = [
    "CompressResult",
    "QatResult",
    "codec_config",
    "compress_params",
    "compress_image",
    "decode_and_render",
    "file_summary",
    "finetune",
    "prune_inactive",
    "settings_from_config",
]

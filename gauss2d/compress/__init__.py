"""The compression workflow above the file format (``gauss2d.codec``).

* ``qat``: quantisation-aware fine-tuning, an objective for the training
  engine (``gauss2d.train``), with the codec's fake quantisers in the loop.
* ``image``: one image: fit (unless given), prune, fine-tune, encode,
  decode, measure (``compress_image``); ``decode_and_render``.
* ``rdo``: the rate-aware fine-tuning of v2 files (D + lambda R, pruning);
  ``retrain``: what it and QAT share.
* ``params``: your own fitted Gaussians into a file with plain keyword
  arguments (``compress_params``).
* ``presets`` (fast / default / best) and ``targets`` (a target bpp or PSNR,
  the step search): callable from a notebook as from the CLI.
* ``files``: an image file into a ``.g2d`` file and back, every check first
  (what ``experiments.codec`` runs).
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
from gauss2d.compress.params import codec_settings, compress_params
from gauss2d.compress.presets import PRESETS, apply_preset
from gauss2d.compress.qat import QatResult, finetune, v1_settings
from gauss2d.compress.rdo import v2_settings
from gauss2d.compress.targets import Goal, QualityError

__all__ = [
    "PRESETS",
    "CompressResult",
    "Goal",
    "QatResult",
    "QualityError",
    "apply_preset",
    "codec_settings",
    "compress_image",
    "compress_params",
    "decode_and_render",
    "file_summary",
    "finetune",
    "prune_inactive",
    "v1_settings",
    "v2_settings",
]

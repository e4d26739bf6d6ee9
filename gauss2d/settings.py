"""Typed, frozen settings resolved once from a config: every default in one place.

The binaries read a ``ml_collections.ConfigDict`` (``--config`` and its
``--config.KEY=VALUE`` overrides) and call ``resolve`` once; everything below
them takes a ``Settings`` (or one of its sections), never a ConfigDict. Each
key's default lives here and only here: ``configs/base.py`` builds its
ConfigDict from ``Settings()`` (``to_config``) and overrides only what a
recipe changes, and the codec section's defaults are the codec's.

``resolve`` checks every value's type against the field's annotation and
raises ``SettingsError`` (a ``Gauss2dError``: one line naming the key and
the value) on a wrong type or an unknown key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from gauss2d.errors import Gauss2dError


class SettingsError(Gauss2dError):
    """A config key with a wrong type or an unknown name."""


@dataclasses.dataclass(frozen=True)
class DataSettings:
    dir: str = ""  # folder of images; "" fits the built-in sample
    downscale: int = 1  # integer box-filter downscale before fitting (smoke runs)
    limit: int = 0  # fit at most this many images of data.dir; 0 = all
    # leave out the first `skip` images of data.dir (sorted) before `limit`: a held-out
    # set, e.g. kodim05-24 with skip=4 (configs/rd_kodak.py:cpu_heldout).
    skip: int = 0
    # SVG inputs (docs/svg.md): the frame's longer side in px (0: the SVG's own size), and k,
    # the target's grid per frame pixel: the Gaussians are fitted against the drawing
    # rasterised k x finer (in that k x frame), so they keep edges sharper than a pixel: 4
    # renders the shipped set at 4x +6.2 dB over k = 1, at 1x -9.2 dB (RESULTS.md, svg_quality).
    # gauss2d/io/svg.py's DEFAULT_SUPERSAMPLE, for direct calls, is the same (a test checks).
    svg_size: int = 0
    svg_supersample: int = 4


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    num_points: int = 70000  # paper's Kodak table (GaussianImage Table 1)
    parameterization: str = "cholesky"  # or "rs"
    # "sum": I = sum_n c_n w_n (GaussianImage; DESIGN.md section 2). "alpha": 3DGS-style
    # front-to-back compositing with a trainable opacity and depth per Gaussian (section 2b,
    # docs/alpha.md); alpha_init_opacity is GaussianImage's 3DGS model's 0.1.
    blend: str = "sum"
    alpha_init_opacity: float = 0.1
    init: str = "random"  # the paper's; "content": gauss2d/init/content.py, docs/init.md; "edges"
    # "content" init: share of means drawn by image-gradient magnitude (the rest on a
    # jittered grid; Image-GS: 0.7 with uniform draws), sigma as a multiple of the local
    # mean spacing, least-squares colour steps against the first render (docs/init.md).
    init_gradient_fraction: float = 0.7
    init_size_factor: float = 0.4
    init_color_iterations: int = 10
    # "edges" init (gauss2d/init/edges.py): the content init's Gaussians turned along the
    # local edge, sigma_along / sigma_across on a straight edge (docs/svg.md measures 4).
    init_edge_elongation: float = 4.0
    # Error-guided allocation (gauss2d/train/densify.py): start with initial_fraction of
    # num_points, add the rest in `rounds` rounds every `every` steps where the error
    # is largest; recycle Gaussians contributing < recycle_below pixels (0 = never).
    densify: bool = False
    densify_rounds: int = 3
    densify_initial_fraction: float = 0.5
    densify_every: int = 500
    densify_recycle_below: float = 0.0


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    backend: str = "xla"  # "xla" (any device), "pallas" (GPU kernel), "reference" (dense, slow)


@dataclasses.dataclass(frozen=True)
class LossSettings:
    # Loss term weights on the clamped render; the paper trains with MSE alone.
    l2: float = 1.0
    l1: float = 0.0
    ssim: float = 0.0


@dataclasses.dataclass(frozen=True)
class OptimSettings:
    name: str = "adan"  # or "adam"
    lr: float = 1e-3
    # Per-group learning rates; None = optim.lr. Configs set them with
    # configs.base.rates_following_lr, so that --config.optim.lr scales them too.
    lr_means: float | None = None
    lr_cov: float | None = None
    lr_color: float | None = None
    b1: float = 0.98  # Adan betas from the paper (Adam uses b1 and b3)
    b2: float = 0.92
    b3: float = 0.99
    eps: float = 1e-8
    schedule: str = "step"  # StepLR: lr * decay_rate every decay_steps; "cosine", "constant"
    decay_steps: int = 20000
    decay_rate: float = 0.5
    iterations: int = 50000
    clip_norm: float = 0.0  # 0 = no gradient clipping (the paper has none)


@dataclasses.dataclass(frozen=True)
class CodecSettings:
    """The ``codec`` section: file format, quantisers and the fine-tuning before the encode."""

    # Format version: 2 (docs/codec.md) scalar colours in colour_space, every
    # attribute under a stored Laplace or histogram model, rate-aware
    # fine-tuning (D + lmbda R) with pruning. 1: v1's quantisers and QAT.
    version: int = 2
    # v1: "entropy" (grid positions coded as a set + adaptive entropy coding of
    # the indices) or "gaussianimage" (the paper's fixed-length layout, FP16 xy).
    mode: str = "entropy"
    chol_bits: int = 6  # v1: LSQ+ bits per Cholesky channel (paper: 6)
    rvq_stages: int = 2  # v1: residual VQ stages for colours (paper: 2)
    codebook_size: int = 8  # v1: codewords per stage (paper: 8)
    # Position grid (px, a power of two): 1/8 px costs 12-14 bits per Gaussian
    # at Kodak densities (benchmarks/RESULTS.md, "codec"); its error
    # (<= 1/16 px) is about FP16's for Kodak-sized images.
    position_step: float = 0.125
    codebook_dtype: str = "float16"  # v1 codebooks in the header: float16 halves the side information
    kmeans_iters: int = 20  # v1: Lloyd iterations of the codebook initialisation
    # Fine-tuning before the encode: the fit's optimiser (optim.name, betas),
    # restarted at qat_lr, scheduled by qat_schedule over qat_steps (cosine:
    # down to qat_lr * optim.decay_rate).
    qat_steps: int = 500
    # On the sample (configs/codec.py's fit, 36.24 dB; quantised 21.62 dB) 300 v1 QAT
    # steps decode at 25.56 / 26.83 / 29.35 / 29.53 / 29.57 dB with qat_lr
    # 3e-4 / 1e-3 / 5e-3 / 1e-2 / 2e-2: a plateau from 5e-3 on.
    qat_lr: float = 1e-2
    qat_schedule: str = "cosine"  # "step" (paper: StepLR), "cosine" or "constant"
    lsq_lr: float = 1e-4  # v1: Adam on the LSQ scale / offset (~0.05 / ~-0.5 px at init)
    commit_weight: float = 1.0  # v1: VQ commitment loss weight (paper: 1)
    ema_decay: float = 0.8  # v1: codebook EMA decay (paper: 0.8)
    color_space: str = "ycbcr"  # v2: "ycbcr" or "rgb"
    # v2 covariance quantiser space: "cholesky" (raw factors) or "log" (log of the
    # diagonal, shear relative to it: gauss2d/codec/cov_space.py).
    cov_space: str = "log"
    # v2: colour steps x 2^(-octaves of the Gaussian's area / 2): finer for the
    # large Gaussians, whose colour errors cover more pixels.
    color_by_size: bool = True
    chol_levels: int = 64  # v2 initial Cholesky step: per-channel range / (levels - 1)
    color_step: float = 1.0 / 64  # v2 initial colour step (the steps are then learned)
    predict: str = "auto"  # v2 neighbour prediction per channel: "auto", "on", "off"
    entropy_model: str = "auto"  # v2 per stream: "auto" (smaller), "laplace", "categorical"
    # lmbda: MSE per bit-per-pixel; the loss is MSE + lmbda * bpp (estimated).
    lmbda: float = 0.01
    quant_lr: float = 1e-2  # v2: Adam on the log steps and offsets of the quantisers
    prune_every: int = 50  # v2: steps between pruning rounds (0: no pruning)
    prune_fraction: float = 0.1  # v2: at most this share of the live Gaussians per round
    # v2/v3: after each pruning round in the first half of the fine-tuning, re-fill up to
    # this share of the live Gaussians into dead slots where the error is largest
    # (compress/regrow.py), so N is chosen by the rate; 0: prune only.
    grow_fraction: float = 0.0
    # v2: after fine-tuning, scale the colour then the Cholesky steps by 2^(k/2),
    # k in [-4, 4], keeping what minimises MSE + lmbda * bpp of the real file.
    step_search: bool = True
    # Which channel groups the step search scales, in order (compress/targets.py
    # SEARCH_GROUPS), and the position grids (px) it tries after them: only when the
    # fine-tuning did not run (codec.qat_steps = 0), as tuned means belong to their grid.
    search_groups: str = "color,chol"
    search_position_steps: tuple[float, ...] = (0.0625, 0.25)
    # v3: progressive layers, coarse to fine; a prefix of whole layers decodes (docs/codec.md).
    layers: int = 1
    # v3 with layers > 1: weight of the mean distortion of the prefixes (layers 1..k, k < L)
    # in the rate-aware fine-tuning, so each prefix is trained to stand alone; 0: the
    # layers are cut from Gaussians trained as one set (compress/prefixes.py).
    prefix_weight: float = 0.0
    # v3: per-Gaussian position precision (gauss2d/codec/position_refine.py). The set of
    # positions is coded on a grid of position_step x 2^K px (at most 1 px), then each
    # Gaussian gets k <= K finer octaves, down to position_step, derived in the decoder
    # from its colour and size (bright, small: finer). 0: one grid for all (as v2).
    # Chosen on kodim01-04: ~2.2-3.3 bits per Gaussian less at equal PSNR.
    position_refine: int = 3
    position_refine_ref: float = -3.75


@dataclasses.dataclass(frozen=True)
class RDSettings:
    """The ``rd`` section of a rate-distortion study (configs/rd_kodak.py)."""

    num_points: tuple[int, ...] = ()  # one operating point per count of Gaussians
    chol_bits: tuple[int, ...] = ()  # one per point, or () for codec.chol_bits at every point
    # codec.lmbda per point (version 2): one per point, several with one
    # num_points (a lambda sweep at fixed N), or () for codec.lmbda everywhere.
    lmbda: tuple[float, ...] = ()
    # Pillow codecs measured on the same images (gauss2d/rd/baselines.py);
    # a codec the installed Pillow lacks is reported and skipped.
    baselines: str = "jpeg,jpeg444,webp,jpeg2000,avif,heif"
    # Published Kodak curves overlaid on the plots and compared by BD-rate
    # (gauss2d/rd/published.py); they are for full-size Kodak only.
    published: str = "gaussianimage,jpeg,webp,jpeg2000,bpg444,c3,coin,vtm,av1,coolchic"
    max_bpp: float = 2.0  # x-axis limit of the plots; 0 = fit everything
    # The images the study's settings (lmbda per point, steps, learning rates) were chosen
    # on: BD-rates are reported for them and for the held-out rest separately (rd/study.py).
    tuning_images: tuple[str, ...] = ("kodim01", "kodim02", "kodim03", "kodim04")


@dataclasses.dataclass(frozen=True)
class VideoSettings:
    """The ``video`` section: a ``.g2v`` encode (configs/video.py, docs/video.md).

    The I-frames take the model, optim and codec sections (the still
    codec's; ``codec.version`` is their still format version); these keys
    say which frames, the GOP and scene cuts, and the P-frames' fine-tuning.
    """

    sequence: str = ""  # a built-in test sequence ("pan", "fade", "object", "cut") when INPUT names one
    frames: int = 16  # at most this many frames of the input (0 = all)
    height: int = 128  # a built-in sequence's frame size (inputs keep theirs)
    width: int = 192
    fps: int = 24  # stored in the header (a video file input keeps its own rate)
    gop: int = 16  # an I-frame every gop frames
    scene_cut: bool = True  # also start an I-frame where a P-frame would not pay
    # A P-frame is replaced by an I-frame when its bytes exceed this share of
    # the last I-frame's bytes, or its PSNR is this many dB below the previous frame's.
    scene_cut_bytes: float = 1.0
    scene_cut_psnr_drop: float = 3.0
    batch_iframes: bool = True  # fit the GOPs' I-frames in one vmapped batch (train.batch)
    p_lmbda: float = 0.01  # P-frame MSE per bit per pixel
    p_iterations: int = 100
    p_lr: float = 0.1  # in quantiser steps per update
    p_motion_lr: float = 8.0
    p_motion_warmup: int = 25
    p_dead_zone: float = 1.0  # |delta| below this many steps codes as 0
    p_add_fraction: float = 0.05
    p_prune_every: int = 25
    p_prune_fraction: float = 0.05
    step_position: float = 0.125  # P-frame delta steps: px
    step_cov: float = 0.05  # per covariance-space channel
    step_color: float = 1.0 / 64  # per colour channel


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run is configured by; ``codec`` and ``rd`` only where the config has them."""

    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    render: RenderSettings = RenderSettings()
    loss: LossSettings = LossSettings()
    optim: OptimSettings = OptimSettings()
    codec: CodecSettings | None = None
    rd: RDSettings | None = None
    video: VideoSettings | None = None
    seed: int = 0  # initialisation seed: same seed, same result on the same machine
    # Images fitted at once (vmap; DESIGN.md section 4, docs/batch.md), per
    # process: rounded up to a multiple of the local device count, so several
    # devices always get an equal share. 1 on one device = one image at a time.
    batch_size: int = 1
    log_every: int = 100  # steps per jitted chunk and progress line
    checkpoint_every: int = 2000  # steps between checkpoints (rounded up to a chunk)
    fps_repeats: int = 100  # renders timed for render_fps (the paper times 100)
    memory_limit_gb: float = 16.0  # refuse images whose estimated fitting memory exceeds this (GiB)

    def replace(self, **changes) -> Settings:
        """A copy with top-level fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain nested dict (for results.json and resume checks); sections that are None are left out."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


SECTIONS: dict[str, type] = {
    "data": DataSettings,
    "model": ModelSettings,
    "render": RenderSettings,
    "loss": LossSettings,
    "optim": OptimSettings,
    "codec": CodecSettings,
    "rd": RDSettings,
    "video": VideoSettings,
}


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """``value`` as the field's type: ints are floats where a float is wanted; nothing else is converted."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        annotation = next(a for a in options if a is not type(None))
        origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise SettingsError(f"config {key}={value!r} is invalid: expected a tuple")
        (item, _) = typing.get_args(annotation)
        return tuple(_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool and not isinstance(value, bool):
        raise SettingsError(f"config {key}={value!r} is invalid: expected True or False")
    if annotation in (int, float, str) and (not isinstance(value, annotation) or isinstance(value, bool)):
        raise SettingsError(f"config {key}={value!r} is invalid: expected {annotation.__name__}")
    return value


def _section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise SettingsError(f"unknown config key {name}.{unknown[0]}; expected one of {sorted(fields)}")
    return cls(**{k: _coerce(f"{name}.{k}", v, hints[k]) for k, v in values.items()})


def resolve(config: Mapping[str, Any]) -> Settings:
    """The frozen settings of a config (a ConfigDict or a plain nested mapping).

    Keys a config leaves out take their defaults here; ``codec`` and ``rd``
    are None when the config has no such section.

    Raises:
      SettingsError: an unknown key or a value of the wrong type.
    """
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    hints = typing.get_type_hints(Settings)
    top = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(values) - top)
    if unknown:
        raise SettingsError(f"unknown config key {unknown[0]}; expected one of {sorted(top)}")
    out = {}
    for key, value in values.items():
        if key in SECTIONS:
            out[key] = None if value is None else _section(key, SECTIONS[key], dict(value))
        else:
            out[key] = _coerce(key, value, hints[key])
    return Settings(**out)


def section_dict(section: Any) -> dict[str, Any]:
    """A settings section's fields as a plain dict (what configs/ turn into ConfigDicts)."""
    return dataclasses.asdict(section)

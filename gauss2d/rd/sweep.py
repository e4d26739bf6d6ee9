"""The rate-distortion study over a folder of images: what ``experiments.rd_sweep`` runs.

For each operating point (``settings.rd.num_points``, optionally with a
Cholesky bit depth from ``settings.rd.chol_bits``) every image is fitted
(``runner.fit_dataset``: batched where shapes allow, resumable mid-fit),
fine-tuned with quantisation, encoded, decoded and measured
(``compress.dataset``: bpp from the file's bytes, PSNR and MS-SSIM of the
decoded render), with the same Gaussians in v1's GaussianImage layout beside
it (``baseline=True``). The Pillow codecs run on the same images. Work directory:

    WORKDIR/sweep.json                 the settings the study was started with
    WORKDIR/gauss2d/n<N>/fit/<image>/  fits (experiments.fit's layout)
    WORKDIR/gauss2d/n<N>/<image>/      file, decoded.png, result.json
    WORKDIR/baselines/<image>.json     the classic codecs' points
    WORKDIR/rd.csv                     one row per image x method x point
    WORKDIR/rd_summary.json            mean curves and BD-rates
    WORKDIR/rd_psnr.png, rd_msssim.png

Every piece is written atomically and skipped when already there, so an
interrupted study resumes; a rerun with other fit or codec settings is
refused instead of mixing results.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax
import PIL

from gauss2d.compress import dataset
from gauss2d.errors import Gauss2dError
from gauss2d.io import checkpoint, runrecord
from gauss2d.rd import baselines, plots, published, study
from gauss2d.runner import dataset as runner
from gauss2d.runner import inputs
from gauss2d.settings import Settings
from gauss2d.train import densify

SWEEP = "sweep.json"
# What a finished piece depends on: a rerun must match these (rd.num_points
# may grow: new points are added, old ones kept).
SETTINGS_KEYS = ("seed", "data", "model", "optim", "loss", "render.backend", "codec")


def _csv(text: str) -> list[str]:
    return [s.strip() for s in str(text).split(",") if s.strip()]


def operating_points(settings: Settings) -> list[tuple[int, int | None, float | None]]:
    """[(num_points, chol_bits or None, lmbda or None)] from ``settings.rd``.

    ``rd.lmbda`` (codec version 2) sets the rate weight per point: one value
    per point, one value for all points of ``rd.num_points``, or () for
    ``codec.lmbda`` everywhere; so points can be set by N, by lambda, or both.

    Raises:
      Gauss2dError: no points, a non-positive count, or ``chol_bits`` /
        ``lmbda`` of another length.
    """
    if settings.rd is None:
        raise Gauss2dError("the config has no rd section (use configs/rd_kodak.py)")
    counts = [int(n) for n in settings.rd.num_points]
    bits = list(settings.rd.chol_bits)
    lmbdas = [float(v) for v in settings.rd.lmbda]
    if not counts or any(n <= 0 for n in counts):
        raise Gauss2dError(f"config rd.num_points={tuple(counts)} is invalid: expected positive counts")
    if bits and len(bits) != len(counts):
        raise Gauss2dError(
            f"config rd.chol_bits has {len(bits)} values for {len(counts)} rd.num_points: "
            "give one per point, or () for codec.chol_bits everywhere"
        )
    if len(counts) == 1 and len(lmbdas) > 1:  # one N, a lambda sweep
        counts = counts * len(lmbdas)
    if lmbdas and (len(lmbdas) != len(counts) or any(v < 0 for v in lmbdas)):
        raise Gauss2dError(
            f"config rd.lmbda={tuple(lmbdas)} is invalid for {len(counts)} rd.num_points: give one value "
            ">= 0 per point (or one rd.num_points for a lambda sweep), or () for codec.lmbda everywhere"
        )
    return [(n, int(bits[i]) if bits else None, lmbdas[i] if lmbdas else None) for i, n in enumerate(counts)]


def point_name(num_points: int, chol_bits: int | None, lmbda: float | None = None) -> str:
    name = f"n{num_points}" if chol_bits is None else f"n{num_points}_b{chol_bits}"
    return name if lmbda is None else f"{name}_l{lmbda:g}"


def fit_name(num_points: int, chol_bits: int | None) -> str:
    """The fit folder: points that differ only in lambda share one fit."""
    return point_name(num_points, chol_bits)


def point_settings(
    settings: Settings, num_points: int, chol_bits: int | None, lmbda: float | None = None
) -> Settings:
    """``settings`` for one operating point."""
    codec = settings.codec
    if chol_bits is not None:
        codec = dataclasses.replace(codec, chol_bits=chol_bits)
    if lmbda is not None:
        codec = dataclasses.replace(codec, lmbda=lmbda)
    return settings.replace(model=dataclasses.replace(settings.model, num_points=num_points), codec=codec)


def _settings(settings: Settings) -> dict[str, Any]:
    plain = settings.as_dict()
    out = {k: runrecord.select(plain, k) for k in SETTINGS_KEYS}
    # Through JSON, so tuples compare equal to the lists sweep.json stored.
    out = json.loads(json.dumps(out, default=str))
    out["model"].pop("num_points", None)  # per point
    if settings.rd.chol_bits:  # per point too
        out["codec"].pop("chol_bits", None)
    if settings.rd.lmbda:
        out["codec"].pop("lmbda", None)
    return out


def published_curves(settings: Settings) -> dict[str, published.PublishedCurve]:
    """The published curves ``rd.published`` names (Gauss2dError for an unknown one)."""
    return {m: published.curve(m) for m in _csv(settings.rd.published)}


def check_settings(run: Settings, workdir: pathlib.Path) -> None:
    """Records the study's settings on first run; refuses a rerun with others."""
    path = workdir / SWEEP
    settings = _settings(run)
    if path.exists():
        stored = json.loads(path.read_text()).get("settings")
        if stored != settings:
            changed = sorted(k for k in settings if stored is None or stored.get(k) != settings[k])
            raise Gauss2dError(
                f"'{workdir}' holds a study made with other settings (differing: {', '.join(changed)}): "
                "use another --workdir, or delete it"
            )
        return
    runrecord.write_json(path, {"settings": settings, "git_commit": runrecord.git_commit()})


def gauss2d_rows(
    settings: Settings, workdir: pathlib.Path, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Fits, fine-tunes, encodes and measures every image at every operating point; the CSV rows."""
    rows = []
    points = operating_points(settings)
    for k, (n, bits, lmbda) in enumerate(points):
        name = point_name(n, bits, lmbda)
        log(
            f"== point {k + 1}/{len(points)}: {n} Gaussians"
            + (f", {bits}-bit Cholesky" if bits else "")
            + (f", lambda {lmbda:g}" if lmbda is not None else "")
        )
        point = point_settings(settings, n, bits, lmbda)
        fit_dir = workdir / "gauss2d" / fit_name(n, bits) / "fit"
        runner.fit_dataset(point, fit_dir, densify.fit_function(point))
        results = dataset.compress_dataset(
            point, workdir / "gauss2d" / name, fitted_dir=fit_dir, baseline=True
        )
        for r in results["images"]:
            label = n if lmbda is None else name
            rows.append(_row(r["name"], "gauss2d", label, r["bytes"], r["bpp"], r["psnr"], r["ms_ssim"]))
            gi = r["gaussianimage"]
            rows.append(
                _row(
                    r["name"], "gaussianimage_mode", label, gi["bytes"], gi["bpp"], gi["psnr"], gi["ms_ssim"]
                )
            )
    return rows


def _row(image, method, point, num_bytes, bpp, psnr, ms_ssim) -> dict[str, Any]:
    return {
        "image": image,
        "method": method,
        "point": point,
        "bytes": int(num_bytes),
        "bpp": float(bpp),
        "psnr": float(psnr),
        "ms_ssim": None if ms_ssim is None else float(ms_ssim),
    }


def baseline_codecs(settings: Settings) -> list[str]:
    """The codecs ``rd.baselines`` names (Gauss2dError for an unknown one)."""
    codecs = _csv(settings.rd.baselines)
    unknown = sorted(set(codecs) - set(baselines.CODECS))
    if unknown:
        raise Gauss2dError(f"config rd.baselines names unknown codecs {unknown}; known: {baselines.CODECS}")
    return codecs


def baseline_rows(run: Settings, workdir: pathlib.Path, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The Pillow codecs on every image (cached per image); the CSV rows."""
    codecs = baseline_codecs(run)
    missing = baselines.unavailable_codecs()
    for codec in codecs:
        if codec in missing:
            log(f"baseline {codec} skipped: {missing[codec]}")
    codecs = [c for c in codecs if c not in missing]
    settings = {
        "codecs": codecs,
        "qualities": {c: list(baselines.DEFAULT_QUALITIES[c]) for c in codecs},
        "pillow": PIL.__version__,
        "data": _settings(run)["data"],
    }
    rows = []
    paths = inputs.image_paths(run)
    for i, path in enumerate(paths):
        cache = workdir / "baselines" / f"{path.stem}.json"
        stored = json.loads(cache.read_text()) if cache.exists() else {}
        if stored.get("settings") != settings:
            target = inputs.load_target(path, run)
            points = {
                c: [dataclasses.asdict(p) for p in baselines.sweep(target, c, settings["qualities"][c])]
                for c in codecs
            }
            stored = {"settings": settings, "points": points}
            runrecord.write_json(cache, stored)
            log(f"[{i + 1}/{len(paths)} {path.stem}] baselines: {', '.join(codecs)}")
        for codec, points in stored["points"].items():
            for p in points:
                rows.append(
                    _row(path.stem, codec, p["quality"], p["num_bytes"], p["bpp"], p["psnr"], p["ms_ssim"])
                )
    return rows


def summarize(settings: Settings, rows: list[dict[str, Any]], workdir: pathlib.Path) -> dict[str, Any]:
    """Writes rd.csv, rd_summary.json and the two plots; returns the summary."""
    curves = study.mean_curves(rows)
    refs = published_curves(settings)
    images = sorted({r["image"] for r in rows})
    summary = {
        "images": images,
        "points": [point_name(*p) for p in operating_points(settings)],
        "curves": curves,
        "bd": study.bd_summary(curves, "gauss2d", refs),
        # Tuning images and held-out images apart (rd.tuning_images): only the second judges.
        "bd_groups": study.group_bd(rows, study.split_groups(images, settings.rd.tuning_images)),
        "bd_note": (
            "BD-rate (%) of gauss2d's mean curve against each anchor (negative: gauss2d needs fewer "
            "bits at equal quality), Bjontegaard with PCHIP over the overlapping range; "
            "'published:*' anchors are full-size Kodak figures, comparable only to a full-size "
            "24-image run"
        ),
        "downscale": int(settings.data.downscale),
        "device": runrecord.device_description(),
        "jax_version": jax.__version__,
        "git_commit": runrecord.git_commit(),
    }
    with checkpoint.atomic_write(workdir / "rd.csv") as f:
        f.write(study.to_csv(rows).encode())
    runrecord.write_json(workdir / "rd_summary.json", summary)
    scale = "" if summary["downscale"] == 1 else f", downscaled {summary['downscale']}x"
    title = f"{len(images)} images{scale}"
    max_bpp = float(settings.rd.max_bpp) or None
    for quality, name in (("psnr", "rd_psnr.png"), ("ms_ssim", "rd_msssim.png")):
        plots.plot_rd(curves, quality, workdir / name, published_curves=refs, title=title, max_bpp=max_bpp)
    return summary


def format_bd(summary: Mapping[str, Any]) -> str:
    """The BD-rate tables as text lines: all images, then each group (tuning / held out)."""
    lines = [f"all {len(summary['images'])} images (mean curves):", *_bd_lines(summary["bd"])]
    for group, entry in summary.get("bd_groups", {}).items():
        images = entry["images"]
        lines.append(f"{group} ({len(images)}: {', '.join(images)}), mean curve | per-image mean:")
        lines += _bd_lines(entry["mean_curve"], entry["per_image"])
    return "\n".join(lines)


def _bd_lines(bd: Mapping[str, Any], per_image: Mapping[str, Any] | None = None) -> list[str]:
    def cell(quality: str, anchor: str) -> str:
        entry = bd.get(quality, {}).get(anchor)
        text = "n/a" if entry is None or "bd_rate" not in entry else f"{entry['bd_rate']:+.1f}%"
        if per_image is not None:
            mean = per_image.get(quality, {}).get(anchor, {}).get("mean")
            text += " | " + ("n/a" if mean is None else f"{mean:+.1f}%")
        return text

    anchors = sorted({a for table in bd.values() for a in table})
    lines = ["  anchor                     BD-rate (PSNR)        BD-rate (MS-SSIM)"]
    for anchor in anchors:
        lines.append(f"  {anchor:<26} {cell('psnr', anchor):>18} {cell('ms_ssim', anchor):>22}")
    return lines


def run_sweep(
    settings: Settings, workdir: str | pathlib.Path, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The whole study into ``workdir``; returns the summary (also in rd_summary.json).

    Raises:
      Gauss2dError: bad ``rd`` settings, a work directory of another study,
        unreadable images, or a model the codec cannot store.
    """
    log = log or (lambda message: print(message, flush=True))
    workdir = pathlib.Path(workdir)
    operating_points(settings)  # fail on bad settings before any work
    published_curves(settings)
    baseline_codecs(settings)
    check_settings(settings, workdir)
    rows = baseline_rows(settings, workdir, log) + gauss2d_rows(settings, workdir, log)
    summary = summarize(settings, rows, workdir)
    log(f"wrote {workdir / 'rd.csv'}, {workdir / 'rd_summary.json'}, rd_psnr.png, rd_msssim.png")
    log(format_bd(summary))
    for quality, table in summary["bd"].items():
        for anchor, entry in table.items():
            if "error" in entry:
                print(
                    f"note: BD ({quality}) against {anchor} not computed: {entry['error']}", file=sys.stderr
                )
    return summary

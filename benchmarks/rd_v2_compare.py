"""BD-rates of a v2 RD study against v1 and the measured codecs, from its rd.csv.

    python -m benchmarks.rd_v2_compare --workdir=runs/rd_v2 [--workdir=runs/rd_v2_rdo ...]

``V1_CPU`` is today's v1 on the same study (configs/rd_kodak.py:cpu: the
same images, fits and points), as recorded in benchmarks/RESULTS.md
("rd_sweep, with the corrected Adan", commit 2b1612a): v1's quantisers and
200 QAT steps. The fits are deterministic (this study's fits reproduce its
fit PSNRs 25.14 / 28.86 / 30.43 / 32.39 dB exactly), so the v1 files of
those fits are what that run measured.
"""

from __future__ import annotations

import csv
import json
import pathlib

from absl import app, flags

from gauss2d.rd import plots, published, study

_WORKDIR = flags.DEFINE_multi_string("workdir", ["runs/rd_v2"], "RD study folders (rd.csv).")
_JSON = flags.DEFINE_string("json", None, "Write the tables here.")
_PLOT = flags.DEFINE_string(
    "plot", None, "Write the first --workdir's PSNR plot (with v1 and the published curves) here."
)
_EXTRA = flags.DEFINE_multi_string(
    "extra", [], "Work directories whose rows complete every --workdir's curve."
)
_AGAINST = flags.DEFINE_multi_string(
    "against",
    [],
    "Other studies of the same images (e.g. held-out ones, where V1_CPU does not apply): "
    "BD-rates of each --workdir's gauss2d curve against theirs.",
)

V1_CPU = {
    "bpp": [0.099, 0.300, 0.470, 0.795],
    "psnr": [23.84, 26.71, 27.87, 28.91],
    "ms_ssim": [0.783, 0.880, 0.909, 0.932],
}
# v2 as session 1 left it (RESULTS.md, "codec_v2": raw Cholesky factors, one
# colour step per channel, the colour-then-Cholesky step search; commit
# 049e549), on the same fits: the "before" of session 2's changes.
V2_SESSION1 = {
    "bpp": [0.114, 0.390, 0.629, 1.087],
    "psnr": [24.93, 28.46, 29.84, 31.53],
    "ms_ssim": [0.824, 0.923, 0.946, 0.967],
}
ANCHORS = ("jpeg", "jpeg444", "webp", "jpeg2000", "avif", "heif")


def _rows(path: pathlib.Path) -> list[dict]:
    out = []
    with path.open() as f:
        for r in csv.DictReader(f):
            r["bpp"], r["psnr"] = float(r["bpp"]), float(r["psnr"])
            r["ms_ssim"] = float(r["ms_ssim"]) if r["ms_ssim"] else None
            out.append(r)
    return out


def compare(workdir: pathlib.Path, extra: list[pathlib.Path] = (), against: list[pathlib.Path] = ()) -> dict:
    rows = _rows(workdir / "rd.csv")
    seen = {(r["image"], r["method"], r["point"]) for r in rows}
    for other in extra:  # more points of the same study, run in another work directory
        for r in _rows(other / "rd.csv"):
            if (r["image"], r["method"], r["point"]) not in seen:
                rows.append(r)
                seen.add((r["image"], r["method"], r["point"]))
    curves = study.mean_curves(rows)
    curves["gauss2d_v1"] = dict(V1_CPU, point=[200, 750, 1250, 2250], images=4)
    curves["gauss2d_v2_session1"] = dict(V2_SESSION1, point=[200, 750, 1250, 2250], images=4)
    ours = curves["gauss2d"]
    table = {"curve": {k: ours[k] for k in ("point", "bpp", "psnr", "ms_ssim")}, "bd": {}, "curves": curves}
    for quality in study.QUALITIES:
        if any(v is None for v in ours[quality]):
            continue
        row = {
            "v1 (RESULTS.md, 2b1612a)": study.compare(
                (V1_CPU["bpp"], V1_CPU[quality]), (ours["bpp"], ours[quality])
            ),
            "v2 session 1 (049e549)": study.compare(
                (V2_SESSION1["bpp"], V2_SESSION1[quality]), (ours["bpp"], ours[quality])
            ),
        }
        for other in against:
            theirs = study.mean_curves(_rows(other / "rd.csv"))["gauss2d"]
            row[f"gauss2d of {other}"] = study.compare(
                (theirs["bpp"], theirs[quality]), (ours["bpp"], ours[quality])
            )
        for anchor in ANCHORS:
            if anchor in curves and all(v is not None for v in curves[anchor][quality]):
                c = curves[anchor]
                row[anchor] = study.compare((c["bpp"], c[quality]), (ours["bpp"], ours[quality]))
        table["bd"][quality] = row
    return table


def main(argv):
    del argv
    out = {}
    for w in _WORKDIR.value:
        out[w] = compare(
            pathlib.Path(w),
            [pathlib.Path(e) for e in _EXTRA.value],
            [pathlib.Path(a) for a in _AGAINST.value],
        )
        print(w)
        c = out[w]["curve"]
        for i, p in enumerate(c["point"]):
            print(f"  {p}: {c['bpp'][i]:.4f} bpp, {c['psnr'][i]:.2f} dB, MS-SSIM {c['ms_ssim'][i]}")
        for quality, row in out[w]["bd"].items():
            for anchor, entry in row.items():
                value = f"{entry['bd_rate']:+.1f}%" if "bd_rate" in entry else entry["error"]
                print(f"  BD-rate ({quality}) vs {anchor}: {value}")
    if _PLOT.value:
        refs = {m: published.curve(m) for m in ("vtm", "bpg444", "coolchic", "c3", "gaussianimage")}
        first = out[_WORKDIR.value[0]]["curves"]
        curves = {k: v for k, v in first.items() if k not in ("gaussianimage_mode",)}
        title = "kodim01-04 at 384x256 (published curves: full-size Kodak, not comparable)"
        plots.plot_rd(curves, "psnr", _PLOT.value, published_curves=refs, title=title, max_bpp=2.0)
    if _JSON.value:
        pathlib.Path(_JSON.value).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    app.run(main)

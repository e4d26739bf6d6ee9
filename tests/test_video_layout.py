"""gauss2d/video sits above train and codec, beside compress (DESIGN.md section 3), read from the source."""

from __future__ import annotations

import pathlib

from test_layout import gauss2d_imports

VIDEO = pathlib.Path(__file__).resolve().parents[1] / "gauss2d" / "video"
ALLOWED = (
    "gauss2d.video",
    "gauss2d.train",
    "gauss2d.codec",
    "gauss2d.compress",
    "gauss2d.render",
    "gauss2d.io",
    "gauss2d.init",
    "gauss2d.gaussians",
    "gauss2d.metrics",
    "gauss2d.errors",
    "gauss2d.settings",  # the bottom of the stack (DESIGN.md section 3): typed settings
)


def test_video_imports_only_what_sits_below_it():
    files = sorted(VIDEO.rglob("*.py"))
    assert files
    for path in files:
        bad = sorted(
            n for n in gauss2d_imports(path) if not any(n == a or n.startswith(a + ".") for a in ALLOWED)
        )
        assert not bad, f"{path.name} imports {bad} (never runner/, rd/ or experiments/)"


def test_video_files_stay_small():
    for path in sorted(VIDEO.rglob("*.py")):
        assert len(path.read_text().splitlines()) <= 500, path.name

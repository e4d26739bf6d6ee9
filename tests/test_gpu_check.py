"""benchmarks.gpu_check --smoke: the GPU's one-call measurement runs end to end on CPU (issue #17).

The same code as on the GPU at tiny sizes, so the script cannot rot before
a GPU is lent. Asserts every section produced its rows (none failed or was
skipped), and that the JSON and the markdown table agree.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from benchmarks import gpu_check

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_runs_every_section_and_writes_json_and_table(tmp_path):
    # A budget nothing here reaches: this test checks that every section runs,
    # not the timing (on a loaded machine a 600 s budget skipped the last one).
    out = tmp_path / "gpu_check"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", f"--out={out}", "--smoke", "--budget_s=100000"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[gpu_check" in proc.stdout  # progress lines
    report = json.loads((out / "gpu_check.json").read_text())
    table = (out / "gpu_check.md").read_text()
    assert report["meta"]["smoke"] is True
    sections = report["sections"]
    assert list(sections) == list(gpu_check.SECTIONS)
    assert len(sections["pallas_knobs"]["rows"]) == len(gpu_check.KNOBS)
    for name, section in sections.items():
        assert not section.get("error"), (name, section.get("error"))
        assert not section.get("skipped"), (name, section["skipped"])
        assert section["rows"], name
        assert f"| {name} |" in table, name
    assert sections["pallas_tests"]["rows"][0].get("passed", 0) > 0
    assert sections["pallas_tests"]["rows"][0].get("failed", 0) == 0
    assert [r["backend"] for r in sections["fit_speed"]["rows"]] == ["pallas"]
    for r in sections["render_speed"]["rows"]:
        assert r["fps_xla"] > 0 and r["fps_pallas"] > 0 and r["step_ms_pallas"] > 0
    for r in sections["paper_parity"]["rows"] + sections["kodak_fast"]["rows"]:
        assert r["steps"] > 0 and 5.0 < r["psnr"] < 60.0, r


def test_full_mode_refuses_a_machine_without_a_gpu(tmp_path):
    if gpu_check.jax.default_backend() == "gpu":
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as e:
        gpu_check.main([f"--out={tmp_path}"])
    assert e.value.code == 2  # argparse's error exit, one line naming the problem


def test_budget_skips_what_does_not_fit():
    budget = gpu_check.Budget(30.0)
    assert budget.fits("fit_speed_row") and not budget.fits("pallas_tests")

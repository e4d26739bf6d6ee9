"""gauss2d/runner/: the preflight checks, reading a fit back and the per-image result files (no fitting)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from PIL import Image

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.io import checkpoint
from gauss2d.runner import fitted, inputs, outputs, preflight
from gauss2d.settings import DataSettings, ModelSettings, Settings


def test_check_output_refuses_what_it_must_and_allows_overwrite(tmp_path):
    existing = tmp_path / "out.png"
    existing.write_bytes(b"x")
    with pytest.raises(Gauss2dError, match="exists; pass --overwrite"):
        preflight.check_output(existing, overwrite=False)
    preflight.check_output(existing, overwrite=True)
    preflight.check_output(tmp_path / "new" / "out.png", overwrite=False)  # folders are made on the way
    with pytest.raises(Gauss2dError, match="is a directory"):
        preflight.check_output(tmp_path, overwrite=True)
    with pytest.raises(Gauss2dError, match="is a file, not a folder"):
        preflight.check_output(existing / "below.png", overwrite=False)
    with pytest.raises(Gauss2dError, match="--workdir"):
        preflight.check_workdir(existing)


def test_memory_check_names_the_image_and_the_limit():
    settings = Settings(memory_limit_gb=0.001)  # 1 MiB
    preflight.check_memory("small", 10, 16, 16, settings)  # 16x16 images and 10 pairs fit in 1 MiB
    with pytest.raises(Gauss2dError, match=r"image 'big' \(512x256.*memory_limit_gb=0.001"):
        preflight.check_memory("big", 10, 256, 512, settings)


def test_init_estimate_grows_with_pixels_only_for_content_init():
    random = Settings(model=ModelSettings(init="random", num_points=100))
    content = Settings(model=ModelSettings(init="content", num_points=100))
    assert preflight.init_pairs_estimate(10, 10, random) == preflight.init_pairs_estimate(1000, 1000, random)
    assert preflight.init_pairs_estimate(1000, 1000, content) > preflight.init_pairs_estimate(10, 10, content)
    with pytest.raises(Gauss2dError, match="image 'huge'"):
        preflight.check_memory_before_init("huge", 20000, 20000, Settings(memory_limit_gb=1.0))


def test_image_is_refused_from_its_header_before_it_is_decoded(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (4000, 3000)).save(path)
    settings = Settings(memory_limit_gb=0.01)
    with pytest.raises(Gauss2dError, match=r"image 'wide' \(4000x3000"):
        preflight.check_image_before_loading(path, settings)
    downscaled = Settings(memory_limit_gb=0.01, data=DataSettings(downscale=8))
    with pytest.raises(Gauss2dError, match=r"\(500x375"):  # the size it would be fitted at
        preflight.check_image_before_loading(path, downscaled)


def test_image_paths_follow_data_dir_and_limit(tmp_path):
    for name in ("b", "a", "c"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.png")
    settings = Settings(data=DataSettings(dir=str(tmp_path), limit=2))
    assert [p.name for p in inputs.image_paths(settings)] == ["a.png", "b.png"]
    assert inputs.load_target(tmp_path / "a.png", settings).shape == (8, 8, 3)
    held_out = Settings(data=DataSettings(dir=str(tmp_path), skip=1))
    assert [p.name for p in inputs.image_paths(held_out)] == ["b.png", "c.png"]
    both = Settings(data=DataSettings(dir=str(tmp_path), skip=1, limit=1))
    assert [p.name for p in inputs.image_paths(both)] == ["b.png"]
    with pytest.raises(Gauss2dError, match="data.skip=3 leaves none of the 3 images"):
        inputs.image_paths(Settings(data=DataSettings(dir=str(tmp_path), skip=3)))
    with pytest.raises(Gauss2dError, match="data.skip=-1"):
        inputs.image_paths(Settings(data=DataSettings(dir=str(tmp_path), skip=-1)))


def test_resume_settings_are_plain_and_name_what_a_resume_compares():
    recorded = inputs.resume_settings(Settings(seed=3))
    assert set(recorded) == set(inputs.RESUME_KEYS)
    assert recorded["seed"] == 3 and recorded["render.backend"] == "xla"
    assert recorded["model"]["num_points"] == ModelSettings().num_points
    assert json.loads(json.dumps(recorded)) == recorded  # what a checkpoint's metadata holds


def test_a_damaged_result_is_redone_and_means_skip_missing_values(tmp_path, capsys):
    path = tmp_path / "result.json"
    path.write_text("{not json")
    assert outputs.read_result(path, "[x]") is None
    assert "damaged" in capsys.readouterr().out
    path.write_text(json.dumps({"name": "a", "psnr": 30.0}))
    assert outputs.read_result(path, "[x]") == {"name": "a", "psnr": 30.0}
    mean = outputs.mean_row([{"psnr": 30.0, "ms_ssim": None}, {"psnr": 32.0, "ms_ssim": 0.9}])
    assert mean["psnr"] == 31.0 and mean["ms_ssim"] == 0.9 and mean["fit_seconds"] is None


def test_a_params_npz_is_read_back_at_its_fitted_size(tmp_path):
    params = gaussians.init_random(jax.random.key(0), 5)
    npz = tmp_path / "params.npz"
    checkpoint.save_params_npz(npz, params)
    with pytest.raises(Gauss2dError, match="pass --fit_height and --fit_width"):
        fitted.load_fitted(npz)
    with pytest.raises(Gauss2dError, match="give both"):
        fitted.load_fitted(npz, fit_height=10)
    (tmp_path / outputs.RESULT).write_text(json.dumps({"name": "p", "height": 12, "width": 20}))
    loaded, height, width = fitted.load_fitted(npz)
    assert (height, width) == (12, 20)
    np.testing.assert_array_equal(loaded.xy, params.xy)
    assert fitted.load_fitted(npz, 7, 9)[1:] == (7, 9)  # the flags win over result.json
    junk = tmp_path / "junk.g2d"
    junk.write_bytes(b"G2D nothing")
    with pytest.raises(Gauss2dError, match="neither a params.npz nor a readable gauss2d file"):
        fitted.load_fitted(junk)
    with pytest.raises(Gauss2dError, match="over the 4-byte limit"):
        fitted.read_bounded(junk, max_bytes=4)

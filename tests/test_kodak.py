"""The Kodak recipe on real Kodak images (../shared/data/kodak; skipped with a reason elsewhere)."""

from __future__ import annotations

import json

import pytest

from configs import kodak
from gauss2d.io import images as data
from gauss2d.runner import dataset as runner
from gauss2d.settings import resolve

pytestmark = [pytest.mark.slow, pytest.mark.kodak]


def test_kodak_folder_lists_24_images_of_the_documented_sizes(kodak_dir):
    paths = data.list_images(kodak_dir)
    assert [p.name for p in paths] == [f"kodim{i:02d}.png" for i in range(1, 25)]
    portrait = {"kodim04", "kodim09", "kodim10", "kodim17", "kodim18", "kodim19"}
    for path in paths[::6] + [kodak_dir / "kodim04.png"]:
        h, w = data.load_image(path).shape[:2]
        assert (h, w) == ((768, 512) if path.stem in portrait else (512, 768))


def test_kodak_smoke_recipe_fits_a_real_image(kodak_dir, tmp_path):
    config = kodak.get_config("smoke")
    with config.unlocked():
        config.data.dir = str(kodak_dir)
        config.data.limit = 1
        config.model.init = "content"
        config.optim.iterations = 100
    results = runner.fit_dataset(resolve(config), tmp_path)
    row = results["images"][0]
    assert (row["name"], row["height"], row["width"], row["iterations"]) == ("kodim01", 128, 192, 100)
    assert row["psnr"] > 20.0  # content init + 100 steps on a 4x-downscaled kodim01
    assert json.loads((tmp_path / "results.json").read_text())["mean"]["psnr"] == pytest.approx(row["psnr"])

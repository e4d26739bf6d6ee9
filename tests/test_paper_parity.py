"""benchmarks/paper_parity.py: the paper's recipe at the published points, and its table."""

from benchmarks import paper_parity
from configs import kodak


def test_config_is_the_paper_recipe_at_the_published_point():
    paper = kodak.get_config().to_dict()
    config = paper_parity.make_config(paper_parity.PUBLISHED_POINTS, paper_parity.PUBLISHED_STEPS).to_dict()
    assert config["model"]["num_points"] == 50000 and config["optim"]["iterations"] == 5000
    assert config["model"]["init"] == "random"
    for key in ("lr", "schedule", "decay_steps", "decay_rate", "name", "b1", "b2", "b3", "eps"):
        assert config["optim"][key] == paper["optim"][key], key
    assert config["loss"] == paper["loss"]


def test_summary_rows():
    results = {
        "kodim03": {"psnr": [30.0, 43.5], "seconds": 12.0},
        "sample": {"psnr": [20.0], "seconds": 1.0},
    }
    rows = paper_parity.summarise(results).splitlines()
    assert rows[2] == "| kodim03 | 43.50 | 43.27 | +0.23 | 12 |"
    assert rows[3] == "| sample | 20.00 | — | — | 1 |"

"""Files written before the codec's redesign still decode bit-identically (tests/data/golden/README.md)."""

import pathlib

import numpy as np
import pytest

from gauss2d.codec import decode

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden"
NAMES = sorted(p.stem for p in GOLDEN.glob("*.g2d"))


def test_golden_files_present():
    assert {"v1_entropy", "v1_gaussianimage", "v2_default", "v2_rgb_laplace", "v2_alpha"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_golden_file_decodes_bit_identically(name):
    decoded = decode((GOLDEN / f"{name}.g2d").read_bytes())
    expected = np.load(GOLDEN / f"{name}.npz")
    assert (decoded.height, decoded.width) == (int(expected["height"]), int(expected["width"]))
    fields = decoded.params._asdict()
    assert set(fields) == set(expected.files) - {"height", "width"}
    for key, value in fields.items():
        value = np.asarray(value)
        assert value.dtype == expected[key].dtype == np.float32, key
        np.testing.assert_array_equal(value.view(np.uint32), expected[key].view(np.uint32), err_msg=key)

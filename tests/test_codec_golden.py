"""Files written before the codec's redesign still decode bit-identically (tests/data/golden/README.md)."""

import pathlib

import numpy as np
import pytest

from gauss2d.codec import decode

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden"
NAMES = sorted(p.stem for p in GOLDEN.glob("*.g2d"))


def test_golden_files_present():
    expected = {"v1_entropy", "v1_gaussianimage", "v2_default", "v2_rgb_laplace", "v2_alpha"}
    assert expected | {"v3_default", "v3_layers4", "v3_refine", "v3_refine_layers4"} <= set(NAMES)


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


def _golden_inputs():
    """The Gaussians make_golden.py encoded (the same seeds and formulas)."""
    import jax.numpy as jnp  # noqa: PLC0415

    from gauss2d import gaussians  # noqa: PLC0415

    h, w = 40, 56
    rng = np.random.default_rng(0)
    means = rng.uniform(0.02, 0.98, (150, 2)) * [w, h]
    xy = np.arctanh(2.0 * means / [w, h] - 1.0)
    chol = rng.laplace([0.8, 0.0, 0.8], [0.3, 0.15, 0.3], (150, 3))
    pal = rng.uniform(-0.2, 1.0, (6, 3))
    color = pal[rng.integers(0, 6, 150)] + rng.normal(0, 0.05, (150, 3))
    p = gaussians.CholeskyParams(*(jnp.asarray(a, jnp.float32) for a in (xy, chol, color)))
    opacity = jnp.asarray(np.random.default_rng(1).uniform(-2, 2, (150, 1)), jnp.float32)
    depth = jnp.asarray(np.random.default_rng(2).normal(size=(150, 1)), jnp.float32)
    return p, gaussians.with_alpha(p, opacity, depth), h, w


@pytest.mark.filterwarnings("ignore::UserWarning")  # state=None, as make_golden.py encoded them
def test_encoders_still_write_the_golden_bytes():
    from gauss2d.codec import encode, format_settings  # noqa: PLC0415

    p, pa, h, w = _golden_inputs()
    old_v2 = {"cov_space": "cholesky", "color_by_size": False}  # the pre-redesign V2Settings() defaults
    files = {
        "v1_entropy": encode(p, h, w, version=1, settings=format_settings(1, mode="entropy")),
        "v1_gaussianimage": encode(p, h, w, version=1, settings=format_settings(1, mode="gaussianimage")),
        "v2_default": encode(p, h, w, settings=format_settings(2, **old_v2)),
        "v2_rgb_laplace": encode(
            p,
            h,
            w,
            settings=format_settings(2, color_space="rgb", entropy_model="laplace", predict="on", **old_v2),
        ),
        "v2_alpha": encode(pa, h, w, settings=format_settings(2, **old_v2)),
    }
    for name, data in files.items():
        assert data == (GOLDEN / f"{name}.g2d").read_bytes(), name


@pytest.mark.filterwarnings("ignore::UserWarning")  # state=None, as make_golden_v3.py encoded them
def test_encoder_still_writes_the_golden_v3_bytes():
    """The v3 format and encoder cannot drift silently (tests/data/golden/make_golden_v3.py)."""
    import importlib.util  # noqa: PLC0415

    from gauss2d.codec import encode, format_settings  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("make_golden_v3", GOLDEN / "make_golden_v3.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    p, _, h, w = _golden_inputs()
    for name, changes in maker.FILES.items():
        data = encode(p, h, w, version=3, settings=format_settings(3, **changes))
        assert data == (GOLDEN / f"{name}.g2d").read_bytes(), name

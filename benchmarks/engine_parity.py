"""Same config and seed, same results: fit, batch fit, QAT PSNR and the codec smoke run's file bytes.

    python -m benchmarks.engine_parity --out /tmp/parity_new
    cd ../base && PYTHONPATH=$PWD python ../engine/benchmarks/engine_parity.py --out /tmp/parity_old

Runs on this checkout or, through the import fallbacks below, on one from
before the training engine (issue 13: ``gauss2d.pipeline``,
``gauss2d.codec.qat``), so the two can be compared figure by figure. On
the built-in sample with the smoke configs (``configs/default.py:smoke``,
``configs/codec.py:smoke``): a fit (PSNR of the final render), a batch fit
of two same-size crops (the same), QAT of the fit (its best quantised-render
PSNR), and ``compress_image`` in both file modes (the .g2d files are
written to --out; their SHA-256 printed). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib

import jax
import numpy as np

from configs import codec as codec_config
from configs import default
from gauss2d import metrics
from gauss2d.io import images as data
from gauss2d.settings import resolve
from gauss2d.train import batch as fit_batch
from gauss2d.train import fit

try:  # this checkout's layout
    from gauss2d import compress
    from gauss2d.compress import qat
    from gauss2d.render import render_clamped
except ImportError:  # before the training engine: the workflow lived in codec/
    from gauss2d.render.params import render_params as render_clamped

    from gauss2d.codec import compress, qat


try:  # typed settings below the binaries (issue 22)
    from gauss2d.settings import resolve as _typed
except ImportError:  # before them, the library took the config

    def _typed(config):
        return config


def psnr_of(params, target) -> float:
    height, width = target.shape[:2]
    return float(metrics.psnr(render_clamped(params, height, width), target))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="folder for the .g2d files")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sample = data.load_image(data.sample_image_path())
    target = data.downscale(sample, 4)  # 64 x 96, as the smoke configs' tests use
    settings = resolve(default.get_config("smoke"))
    rows = {}

    fitted = fit.fit_image(target, settings, jax.random.key(0))
    rows["fit_psnr"] = psnr_of(fitted.params, target)
    rows["fit_history_psnr_last"] = float(fitted.history["psnr"][-1])

    crops = np.stack([sample[:64, :96], sample[64:128, 96:192]])
    batch = fit_batch.fit_batch(crops, settings, [jax.random.key(1), jax.random.key(2)])
    rows["batch_psnr"] = [psnr_of(r.params, t) for r, t in zip(batch, crops, strict=True)]

    codec = codec_config.get_config("smoke")
    tuned = qat.finetune(target, fitted.params, _typed(codec), jax.random.key(3))
    rows["qat_psnr"] = tuned.psnr
    rows["qat_initial_psnr"] = tuned.initial_psnr
    rows["qat_best_step"] = tuned.best_step

    for mode in ("entropy", "gaussianimage"):
        with codec.unlocked():
            codec.codec.mode = mode
        result = compress.compress_image(target, _typed(codec), jax.random.key(0))
        (out / f"smoke_{mode}.g2d").write_bytes(result.data)
        rows[f"g2d_{mode}"] = {
            "bytes": len(result.data),
            "sha256": hashlib.sha256(result.data).hexdigest(),
            "psnr": result.summary["psnr"],
        }
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

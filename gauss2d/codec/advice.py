"""The warnings the codec gives when it is asked to encode Gaussians that were not fine-tuned for it.

One source for the text, used by ``codec.encode`` (every version)
and ``compress.compress_params`` (issue 16): encoding freshly fitted
Gaussians without fine-tuning with the quantisers costs a lot (issue 16
measured 33.90 dB fitted, 23.75 dB decoded with v1's colour VQ), and an
encode without the fine-tuning's quantiser state re-initialises the
quantisers (for v1, k-means codebooks: the fine-tuning's are lost, 1.5 dB
in issue 16). Whether the parameters were fine-tuned is not visible in
them; what the encoder does know is whether it was given the quantiser
state that fine-tuning produces, so a missing state is what it warns about.
When the caller gives the image, the warning measures the cost: the PSNR of
the decoder's render against that of the unquantised Gaussians.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np

from gauss2d.render import render_clamped

# What recovers the loss, named in every warning.
REMEDY = (
    "fine-tune with the quantisers first (gauss2d.compress.compress_params(params, target), or "
    "compress.finetune / rdo.finetune) and pass their state"
)


class NotFineTunedWarning(UserWarning):
    """Gaussians encoded with quantisers they were not fine-tuned with."""


def psnr_of(params, target: np.ndarray) -> float:
    """PSNR in dB of the clamped render of ``params`` against ``target`` [H, W, 3] in [0, 1]."""
    target = jnp.asarray(target, jnp.float32)
    image = render_clamped(params, int(target.shape[0]), int(target.shape[1]))
    mse = float(jnp.mean((image - target) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def measured_cost(params, quantized, target: np.ndarray | None) -> dict[str, float]:
    """{"fit_psnr", "decoded_psnr"} of the unquantised and the quantised Gaussians; {} without a target."""
    if target is None:
        return {}
    return {"fit_psnr": psnr_of(params, target), "decoded_psnr": psnr_of(quantized, target)}


def not_finetuned_message(
    who: str, fit_psnr: float | None = None, decoded_psnr: float | None = None, missing_state: str = ""
) -> str:
    """The warning's text.

    Args:
      who: the call, e.g. "codec.encode(state=None)".
      fit_psnr: PSNR of the unquantised Gaussians, if measured.
      decoded_psnr: PSNR of the decoded file, if measured.
      missing_state: what re-initialising the state loses ("" if nothing more to say).
    """
    text = f"{who}: these Gaussians were not fine-tuned with the quantisers; "
    if fit_psnr is not None and decoded_psnr is not None:
        text += (
            f"plain quantisation decodes at {decoded_psnr:.2f} dB against the unquantised "
            f"{fit_psnr:.2f} dB ({fit_psnr - decoded_psnr:.2f} dB lost). "
        )
    else:
        text += "plain quantisation can cost several dB (pass target= to measure it). "
    if missing_state:
        text += missing_state + " "
    return text + f"To recover it, {REMEDY}."


def warn_not_finetuned(
    who: str,
    *,
    fit_psnr: float | None = None,
    decoded_psnr: float | None = None,
    missing_state: str = "",
    stacklevel: int = 3,
) -> None:
    """Issues ``NotFineTunedWarning`` with ``not_finetuned_message``'s text."""
    warnings.warn(
        not_finetuned_message(who, fit_psnr, decoded_psnr, missing_state),
        NotFineTunedWarning,
        stacklevel=stacklevel,
    )

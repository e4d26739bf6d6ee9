"""Running many images, one module per job; shared by the fit, render and codec command lines.

* ``preflight``: memory estimates and checks, output and work-directory checks (before any work);
* ``inputs``: the images to fit, loaded as fitted, initialised or resumed from their checkpoints;
* ``dataset``: the dataset loop (batches by shape, devices, this process's shard, resume);
* ``outputs``: per-image files (checkpoint, render.png, params.npz, result.json) and results.json;
* ``measure``: a finished fit's PSNR / MS-SSIM and render FPS;
* ``fitted``: a fit read back (params.npz or .g2d) and rendered at any size;
* ``distributed``: several hosts (``jax.distributed``), the shard plan and merging their rows.

Above the training engine and the compression workflow's objectives; nothing below imports it.
"""

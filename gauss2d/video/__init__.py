"""Video: test sequences, frames, the classic yardstick, all-I coding and the P-frame objective (issue 24).

* ``sequences``: deterministic test sequences made by code (pan and zoom,
  cross-fade, moving object).
* ``frames``: a folder of frames or a video file (PyAV) as [T, H, W, 3].
* ``classic``: H.264 / H.265 / AV1 through PyAV's FFmpeg, measured like our files.
* ``intra``: every frame a still v2 ``.g2d`` (the all-I baseline).
* ``delta``: what a P-frame codes and the decoder's ``apply_delta``.
* ``pframe``: fine-tune the previous decoded frame towards the next with
  D + lambda R_delta on the training engine (global motion, deltas, added,
  removed), closed loop.

Sits above ``train`` and ``codec``, beside ``compress`` (DESIGN.md section 3).
The ``.g2v`` container is not here yet: it is built on the codec's one
container (docs/video.md).
"""

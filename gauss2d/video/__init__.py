"""Video: test sequences, frame reading and the P-frame objective (issue 24).

* ``sequences``: deterministic test sequences made by code (pan and zoom,
  cross-fade, moving object).
* ``frames``: a folder of frames or a video file (PyAV) as [T, H, W, 3].
* ``pframe``: fine-tune the previous decoded frame's Gaussians towards the
  next frame with D + lambda R_delta on the training engine; what changed
  (deltas, added, removed) as arrays, the input of the future P-frame sections.

Sits above ``train`` and ``codec``, beside ``compress`` (DESIGN.md section 3).
The ``.g2v`` container is not here yet: it is built on the codec's one
container (docs/video.md).
"""

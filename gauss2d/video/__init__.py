"""Video (issue 24): test sequences, the classic yardstick, all-I coding, P-frames and the ``.g2v`` file.

* ``sequences``: deterministic test sequences made by code (pan and zoom,
  cross-fade, moving object).
* ``frames``: a folder of frames or a video file (PyAV) as [T, H, W, 3].
* ``classic``: H.264 / H.265 / AV1 through PyAV's FFmpeg, measured like our files.
* ``intra``: every frame a still v2 ``.g2d`` (the all-I baseline).
* ``delta``: what a P-frame codes and the decoder's ``apply_delta``.
* ``pframe``: fine-tune the previous decoded frame towards the next with
  D + lambda R_delta on the training engine (global motion, deltas, added,
  removed), closed loop.

* ``g2v``: the ``.g2v`` layout on the codec's one container (header, frame
  index, a record and CRC per frame); ``pcoding``: a P-frame's payload.
* ``encoder`` / ``decoder``: a sequence to a ``.g2v`` file (GOP, scene cut,
  batched I-frames, closed loop) and back (budget first, random access).
* ``files``: what ``experiments.video`` runs.

Sits above ``train`` and ``codec``, beside ``compress`` (DESIGN.md section 3).
"""

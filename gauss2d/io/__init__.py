"""What a run reads and writes: images (bounded decoders), checkpoints (atomic, validated), run records.

Nothing here imports the renderers or the training engine; the SVG loader
will live here too (DESIGN.md section 3).
"""

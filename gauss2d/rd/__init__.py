"""Rate-distortion study tools: Bjontegaard metrics (bjontegaard.py), published reference points
(published.py), classic-codec baselines (baselines.py), plots (plots.py)."""

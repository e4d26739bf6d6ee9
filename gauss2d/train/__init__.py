"""Training: the engine (one guarded step, scan chunks, one host loop) and what plugs into it.

``engine`` is the one training loop (train state, guarded step, capacity
growth, divergence stops); ``fit`` and ``batch`` are its objectives for one
image and for a vmapped batch; ``densify`` allocates Gaussians between
rounds; ``own_loop`` trains a user's loss; ``optim`` and ``losses`` are the
optimiser chains (our Adan) and the reconstruction losses.
"""

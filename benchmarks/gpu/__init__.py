"""The pieces of benchmarks.gpu_check (one call that measures everything the GPU owes)."""

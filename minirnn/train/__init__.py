"""Training: optimisers, checkpoints, the two composed models and the Engine that trains them
on any backend (numpy, numba, or torch on CPU/CUDA)."""

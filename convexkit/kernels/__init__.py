"""Fused kernels for the CPU (numba) and the GPU (CuPy).

The plain array path stays the reference and the fallback."""

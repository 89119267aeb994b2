"""Measuring the backbone and the models: timing, memory, the GEMM
reference and comparisons (tools/benchmark.py), and the GPU check
(tools/gpu_check.py)."""


class UsageError(ValueError):
    """Arguments that cannot be run: the command line reports it."""

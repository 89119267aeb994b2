"""Measuring the backbone and the models: timing, memory, the GEMM
reference and comparisons (tools/benchmark.py), and the GPU check
(tools/gpu_check.py)."""

"""The GPU check (tools/gpu_check.py): the backbone's CUDA tests and
benchmarks in one run that keeps to a time budget, reported as JSON and
markdown. ``plan`` lists the steps, ``runner`` runs them against the budget
in worker processes, ``steps`` is what a worker runs, ``report`` reads the
results."""

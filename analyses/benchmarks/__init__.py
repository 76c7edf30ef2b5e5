"""Benchmarks: scripts that time convexkit against its peers side by side in one run and print
ratios. Run one with ``python -m analyses.benchmarks.<name>`` (``--quick`` for a smoke run)."""

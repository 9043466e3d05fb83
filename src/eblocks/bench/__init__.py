"""Benchmark drivers behind `eblocks bench` (results under ``bench/results/``)."""

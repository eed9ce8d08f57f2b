"""Benchmarks that print their figures (a table, then one JSON line); shared builders in ``bench.models``."""

"""Benchmarks: this package against its peers, side by side in one process."""

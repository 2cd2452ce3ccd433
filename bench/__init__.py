"""Benchmarks of tuneforge against other optimizers (see bench/README.md)."""

"""Benchmarks: ``./dev bench NAME`` (or ``python -m bench NAME``) prints a table."""

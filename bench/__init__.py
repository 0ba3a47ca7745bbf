"""Benchmarks for ingest, memory, attribution throughput and latency, restart, churn.

Run them all with ``python -m bench`` (see ``bench/run.py`` and BENCHMARKS.md).
Benchmarks are separate scripts that print tables; nothing here is a test and
nothing here asserts on time.
"""

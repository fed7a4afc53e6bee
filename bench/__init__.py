"""Benchmarks of Conveyor against peer task queues on the same broker, in the same run.

``python -m bench.run`` runs everything; see docs/performance.md.
"""

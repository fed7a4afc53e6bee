"""Conveyor: a distributed task queue for Python."""

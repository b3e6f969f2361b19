"""Benign devices. Each module simulates one device type from ``start`` to ``end`` of the capture."""

"""Predictive autoscaler daemon for GPU worker fleets."""

__version__ = "0.1.0"

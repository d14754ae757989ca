"""Monitoring: prediction capture, feedback, drift, system metrics, Prometheus, DORA and alerts."""

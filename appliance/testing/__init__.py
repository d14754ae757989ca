"""Support for tests and benchmarks, never imported by the running platform."""

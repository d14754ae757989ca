"""Runs: executions of a recipe with their params, stepwise metrics, artifacts and lineage."""

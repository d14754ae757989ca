"""Serving: model runtimes, dynamic batching, the model pool with hot swap, and deployments."""

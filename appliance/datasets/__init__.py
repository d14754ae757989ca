"""Datasets: imagefolder validation, versioned manifests and the synthetic generator."""

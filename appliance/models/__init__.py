"""The model registry: versioned Hugging Face model folders with metrics, lineage and aliases."""

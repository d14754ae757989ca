"""Runtimes: how a model version is loaded and run. A recipe's own `load()` serves what the
recipe trained (`recipe.py`); the Hugging Face runtime serves a standard folder by its config
(`huggingface/`). A version records which one, with its task."""

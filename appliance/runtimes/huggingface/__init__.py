"""The Hugging Face runtime: standard transformers folders served by their own config."""

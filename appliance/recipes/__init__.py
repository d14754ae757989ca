"""Recipes: folders with `recipe.toml` and a module with `train(ctx)` and `evaluate(ctx)`."""

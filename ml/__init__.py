"""Risk models: features, datasets, training on Ray, MLflow registry, serving (settings as arguments)."""

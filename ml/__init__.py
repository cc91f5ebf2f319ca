"""Risk models: features, datasets, training on Ray, the MLflow registry, serving (settings come as arguments)."""

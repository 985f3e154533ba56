"""Training: datasets, the three model families, ONNX export, MLflow and promotion."""

"""ONNX Runtime model pool, alias routing and hot swap."""

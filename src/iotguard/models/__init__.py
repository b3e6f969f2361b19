"""The model zoo behind one registry, and model artifacts (ONNX + manifest)."""

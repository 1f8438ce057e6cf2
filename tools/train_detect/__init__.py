"""Training and export of the hybrid SNN-ANN detector and its SNN-only and ANN-only baselines (JAX -> .esnn + ONNX)."""

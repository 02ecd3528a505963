"""lightning-digits: MNIST digit classification with PyTorch Lightning.

This file imports nothing heavy, so the onnxruntime-only predictor can live in the package without
pulling in torch.
"""

__version__ = "0.1.0"

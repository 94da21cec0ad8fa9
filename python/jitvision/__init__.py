"""jitvision: train PyTorch models, export them through TorchScript, and check the C++ app against them."""

__version__ = "0.1.0"

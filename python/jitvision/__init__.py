"""jitvision: train PyTorch models, export them through TorchScript, and check the C++ app against them."""

from importlib.metadata import version

__version__ = version("jitvision")  # from the top-level VERSION file, through the package's installed metadata

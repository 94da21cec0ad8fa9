"""The MNIST digit model: data, training, TorchScript export and verification, reference inference, test images."""

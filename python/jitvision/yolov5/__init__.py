"""YOLOv5: our model, safe import of official checkpoints, TorchScript export, the reference detector."""

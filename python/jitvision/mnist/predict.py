"""Python reference inference with an exported digit model, normalising input as its metadata says."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from jitvision.model_file import load_model, read_contract


class DigitPredictor:
    def __init__(self, model_path: str | Path, device: str = "cpu"):
        self.device = device
        loaded = load_model(str(model_path), device)
        self.module, self.metadata = loaded.module, loaded.metadata
        contract = read_contract(loaded).as_classifier()
        self.scale, self.mean, self.std = contract.scale, contract.mean[0], contract.std[0]
        self.labels = contract.labels

    def probabilities(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """[N, 28, 28] light-on-dark digits, pixel values 0..255 (uint8 or float) -> probabilities [N, classes]."""
        x = torch.as_tensor(np.asarray(images)).float().unsqueeze(1)
        x = (x / self.scale - self.mean) / self.std
        with torch.no_grad():
            logits = [self.module(b.to(self.device)).float().cpu() for b in x.split(batch_size)]
        return torch.cat(logits).softmax(1).numpy() if logits else np.zeros((0, len(self.labels)), np.float32)

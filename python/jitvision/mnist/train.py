"""Training and evaluation of DigitNet on uint8 MNIST arrays."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from jitvision.mnist.model import DigitNet

PIXEL_SCALE = 255.0
MEAN = 0.1307  # the usual MNIST training-set statistics; recorded in the exported metadata
STD = 0.3081


@dataclass
class TrainConfig:
    epochs: int = 12
    batch_size: int = 128
    max_lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    seed: int = 0
    # random affine augmentation: rotation (degrees), scale range, translation (pixels), shear (degrees)
    rotate: float = 12.0
    scale: tuple[float, float] = (0.85, 1.1)
    translate: float = 2.5
    shear: float = 8.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] -> the model's normalised float32 input [N, 1, 28, 28]."""
    x = torch.as_tensor(np.asarray(images)).float().unsqueeze(1)
    return (x / PIXEL_SCALE - MEAN) / STD


def random_affine(x: torch.Tensor, cfg: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Rotate, scale, shear and shift each image of a normalised batch by its own random amount."""
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (hi - lo) + lo

    angle = uniform(-cfg.rotate, cfg.rotate) * math.pi / 180
    shear = uniform(-cfg.shear, cfg.shear) * math.pi / 180
    scale = uniform(*cfg.scale)
    # affine_grid maps output to input coordinates in [-1, 1]: invert the scale, a pixel is 2/28 wide
    tx, ty = (uniform(-cfg.translate, cfg.translate) * 2 / 28 for _ in range(2))
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([
        torch.stack([cos, -sin + torch.tan(shear) * cos, tx], 1),
        torch.stack([sin, cos + torch.tan(shear) * sin, ty], 1),
    ], 1).to(x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = (0 - MEAN) / STD
    return F.grid_sample(x - background, grid, align_corners=False, padding_mode="zeros") + background


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 500):
    """Logits for normalised inputs, computed in batches, returned on the CPU."""
    return torch.cat([model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])


def accuracy(logits: torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    return (logits.argmax(1) == torch.as_tensor(np.asarray(labels)).long()).float().mean().item()


def train(images: np.ndarray, labels: np.ndarray, cfg: TrainConfig, device: torch.device,
          heldout: tuple[np.ndarray, np.ndarray] | None = None) -> DigitNet:
    """Train a DigitNet from scratch; with ``heldout`` given, report its accuracy after each epoch."""
    seed_everything(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = DigitNet().to(device)
    x, y = to_input(images), torch.as_tensor(np.asarray(labels)).long()
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.max_lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.max_lr, epochs=cfg.epochs,
                                                   steps_per_epoch=steps_per_epoch)
    held_x = to_input(heldout[0]) if heldout else None
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False)
        total_loss = 0.0
        for step in bar:
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            batch = random_affine(x[idx], cfg, generator).to(device)
            loss = F.cross_entropy(model(batch), y[idx].to(device), label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        line = f"epoch {epoch}/{cfg.epochs}: train loss {total_loss / steps_per_epoch:.4f}"
        if held_x is not None:
            model.eval()
            line += f", held-out accuracy {accuracy(predict_logits(model, held_x, device), heldout[1]):.4f}"
        tqdm.write(line)
    return model.eval()

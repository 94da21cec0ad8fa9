"""The digit classifier: a small VGG-style CNN with batch norm and dropout.

Input: normalised [B, 1, 28, 28] float32 ((pixel / 255 - mean) / std); output: raw logits [B, 10].
"""
from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 10


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DigitNet(nn.Module):
    """28x28 -> two conv stages (32, 64 channels) each ending in 2x2 max-pool -> 64-unit head -> 10 logits."""

    def __init__(self, width: int = 32, hidden: int = 64, dropout: float = 0.3):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, width), conv_bn_relu(width, width), nn.MaxPool2d(2),
            conv_bn_relu(width, 2 * width), conv_bn_relu(2 * width, 2 * width), nn.MaxPool2d(2),
            nn.Dropout(dropout / 2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

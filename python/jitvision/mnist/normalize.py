"""Python reference of the MNIST-style digit normalisation (the C++ app has its own; tests compare outcomes).

Any image -> 28x28 grey, light ink on dark: polarity from the border, background removed, the digit's bounding box
fitted into 20x20 keeping aspect, then centred by its centre of mass in 28x28, as MNIST itself was made.
"""
from __future__ import annotations

import cv2
import numpy as np

BOX = 20
SIDE = 28
BORDER = 2  # pixels of frame used to estimate the paper


def mnist_style(image: np.ndarray) -> np.ndarray:
    """uint8 grey or BGR image of one digit -> uint8 [28, 28] light-on-dark digit."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    grey = grey.astype(np.float32)
    ring = np.concatenate([grey[:BORDER].ravel(), grey[-BORDER:].ravel(),
                           grey[:, :BORDER].ravel(), grey[:, -BORDER:].ravel()])
    if np.median(ring) > 127:  # light paper: dark ink
        grey, ring = 255 - grey, 255 - ring
    background = np.median(ring)
    noise = 1.4826 * np.median(np.abs(ring - background))
    ink = cv2.GaussianBlur(grey, (3, 3), 0) - background if noise > 0 else grey - background
    peak = ink.max()
    if peak <= 0:
        return np.zeros((SIDE, SIDE), np.uint8)
    ink[ink < max(4 * noise, 0.1 * peak)] = 0
    ink = keep_large_components(ink)
    ys, xs = np.nonzero(ink)
    crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1] * (255.0 / peak)
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return center_by_mass(small)


def keep_large_components(ink: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Zero the connected specks smaller than ``fraction`` of the largest ink blob."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0).astype(np.uint8), connectivity=8)
    if count <= 2:
        return ink
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= fraction * areas.max()])
    return np.where(keep[labels], ink, 0).astype(np.float32)


def center_by_mass(small: np.ndarray) -> np.ndarray:
    """Place ``small`` (at most 20x20) in 28x28 so that its centre of mass lands on the centre."""
    h, w = small.shape
    total = small.sum()
    cy = (small.sum(1) @ np.arange(h)) / total if total > 0 else (h - 1) / 2
    cx = (small.sum(0) @ np.arange(w)) / total if total > 0 else (w - 1) / 2
    # whole-pixel shift, as MNIST did: no resampling blur
    shift = np.float32([[1, 0, round((SIDE - 1) / 2 - cx)], [0, 1, round((SIDE - 1) / 2 - cy)]])
    out = cv2.warpAffine(small, shift, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderValue=0)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)

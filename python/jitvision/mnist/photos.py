"""Test images from MNIST digits: the 28x28 PNGs themselves, and "photos" of them.

A photo is the digit as dark ink on light, slightly tinted paper, enlarged, placed off-centre in a larger canvas
(64-160 px, the digit never filling it), with Gaussian noise, JPEG-compressed. Each photo depends only on the seed
and the digit's index, so a set can be regenerated exactly.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from jitvision.errors import OutputError

JPEG_QUALITY = 70


def digit_name(index: int, label: int, suffix: str) -> str:
    """File names sort in index order and carry the true label: ``00042_7.png``."""
    return f"{index:05d}_{label}{suffix}"


def write_digit_pngs(images: np.ndarray, labels: np.ndarray, out_dir: str | Path) -> list[tuple[Path, int]]:
    """Write uint8 [N, 28, 28] digits as grey PNGs; returns (path, label) in index order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (image, label) in enumerate(zip(images, labels)):
        path = out_dir / digit_name(i, int(label), ".png")
        if not cv2.imwrite(str(path), image):
            raise OutputError(f"cannot write {path}")
        written.append((path, int(label)))
    return written


def make_photo(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A BGR uint8 "photo" of a light-on-dark 28x28 digit (see the module docstring)."""
    size = int(round(28 * rng.uniform(1.6, 3.0)))  # 45-84 px
    canvas = int(rng.integers(max(64, int(size * 1.3)), 161))
    top, left = (int(rng.integers(0, canvas - size + 1)) for _ in range(2))
    ink = np.zeros((canvas, canvas), np.float32)
    ink[top:top + size, left:left + size] = cv2.resize(digit, (size, size), interpolation=cv2.INTER_CUBIC) / 255.0
    ink = np.clip(ink, 0, 1)[..., None]
    paper = rng.uniform(175, 235) + rng.uniform(-12, 12, size=3)  # per-channel tint
    shade = np.linspace(-1, 1, canvas, dtype=np.float32)[None, :, None] * rng.uniform(-15, 15)  # uneven light
    ink_level = rng.uniform(15, 70) + rng.uniform(-8, 8, size=3)
    photo = (paper + shade) * (1 - ink) + ink_level * ink
    photo += rng.normal(0, rng.uniform(4, 9), size=photo.shape)
    return np.clip(photo, 0, 255).astype(np.uint8)


def write_digit_photos(images: np.ndarray, labels: np.ndarray, out_dir: str | Path,
                       seed: int = 0) -> list[tuple[Path, int]]:
    """Write each digit as a JPEG photo (quality 70); returns (path, label) in index order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (image, label) in enumerate(zip(images, labels)):
        photo = make_photo(image, np.random.default_rng([seed, i]))
        path = out_dir / digit_name(i, int(label), ".jpg")
        if not cv2.imwrite(str(path), photo, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OutputError(f"cannot write {path}")
        written.append((path, int(label)))
    return written

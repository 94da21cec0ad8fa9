"""Digit ink: MNIST digits (by split) or digits drawn with OpenCV's fonts, as alpha masks placed into scenes.

A glyph is a float32 alpha mask (1 = ink) with its class. MNIST pools record where each digit came from
(``t10k:123`` = image 123 of the t10k file) so tests can prove the training and validation digits are disjoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np

from jitvision.mnist.data import heldout_mask, load_split

INK_THRESHOLD = 0.3  # alpha above which a pixel counts as ink for the tight box

FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)


@dataclass
class Glyph:
    alpha: np.ndarray  # float32 [h, w] in [0, 1]
    cls: int
    source: str  # "t10k:123", "train:456" or "font"


class MnistPool:
    """The MNIST digits of one split: ``train`` (the training digits) or ``val`` (the held-out digits)."""

    def __init__(self, data_dir: Path, split: str):
        mnist = load_split(data_dir, train=split == "train")
        if split == "train":
            self.images, self.labels = mnist.train_images, mnist.train_labels
            if mnist.kind == "mnist-full":
                self.ids = [f"train:{i}" for i in range(len(self.images))]
            else:
                self.ids = [f"t10k:{i}" for i in np.flatnonzero(~heldout_mask(len(self.images) * 5 // 4))]
        else:
            self.images, self.labels = mnist.heldout_images, mnist.heldout_labels
            if mnist.kind == "mnist-full":
                self.ids = [f"t10k:{i}" for i in range(len(self.images))]
            else:
                self.ids = [f"t10k:{i}" for i in np.flatnonzero(heldout_mask(len(self.images) * 5))]
        if len(self.ids) != len(self.images):
            raise ValueError(f"MNIST {split} split: {len(self.images)} images but {len(self.ids)} ids")
        self.description = mnist.description
        self.kind = mnist.kind

    def sample(self, rng: np.random.Generator, digit: Optional[int] = None) -> Glyph:
        """A random digit of the pool, of class ``digit`` when given."""
        if digit is None:
            i = int(rng.integers(len(self.images)))
        else:
            i = int(rng.choice(np.flatnonzero(self.labels == digit)))
        return Glyph(self.images[i].astype(np.float32) / 255, int(self.labels[i]), self.ids[i])


def font_glyph(rng: np.random.Generator, digit: Optional[int] = None) -> Glyph:
    """A digit in a random Hershey font (sometimes italic), drawn large on a black canvas."""
    digit = int(rng.integers(10)) if digit is None else digit
    font = int(rng.choice(FONTS)) | (cv2.FONT_ITALIC if rng.random() < 0.25 else 0)
    scale, thickness = 2.5, int(rng.integers(3, 10))
    (w, h), base = cv2.getTextSize(str(digit), font, scale, thickness)
    canvas = np.zeros((h + base + 2 * thickness + 8, w + 2 * thickness + 8), np.uint8)
    cv2.putText(canvas, str(digit), (thickness + 4, h + thickness + 4), font, scale, 255, thickness, cv2.LINE_AA)
    return Glyph(canvas.astype(np.float32) / 255, digit, "font")


def ink_box(alpha: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
    """Tight (x1, y1, x2, y2) of the ink, x2/y2 exclusive; None when there is none."""
    ys, xs = np.nonzero(alpha > INK_THRESHOLD)
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def transform(glyph: Glyph, height: float, angle: float, rng: np.random.Generator) -> Optional[np.ndarray]:
    """The glyph's ink scaled to ``height`` pixels, rotated by ``angle`` degrees, slightly sheared and with its
    stroke made bolder or thinner; returns the alpha patch (with a 2-pixel margin) or None for an empty glyph."""
    box = ink_box(glyph.alpha)
    if box is None:
        return None
    x1, y1, x2, y2 = box
    src = glyph.alpha[y1:y2, x1:x2]
    scale = height / src.shape[0]
    stroke = rng.uniform(-0.15, 0.25) * scale  # pixels of ink added (or removed) at the target size
    shear = rng.uniform(-0.2, 0.2)
    theta = np.radians(angle)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    linear = rot @ np.array([[1, shear], [0, 1]]) * scale
    h0, w0 = src.shape
    corners = np.array([[0, 0], [w0, 0], [0, h0], [w0, h0]], np.float64) @ linear.T
    lo, hi = corners.min(0), corners.max(0)
    size = np.ceil(hi - lo).astype(int) + 4
    matrix = np.hstack([linear, (2 - lo)[:, None]]).astype(np.float32)
    patch = cv2.warpAffine(src, matrix, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    k = int(round(abs(stroke)))
    if k:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        patch = cv2.dilate(patch, kernel) if stroke > 0 else cv2.erode(patch, kernel)
    return np.clip(patch, 0, 1) if ink_box(patch) is not None else None


def ink_colour(rng: np.random.Generator, background_luma: float) -> np.ndarray:
    """A BGR ink colour contrasting with a background of the given luminance (dark ink on light, or the reverse)."""
    colour = rng.uniform(0, 255, 3) if rng.random() < 0.4 else np.full(3, rng.uniform(0, 255))
    luma = float(colour @ np.array([0.114, 0.587, 0.299])) + 1e-3
    if background_luma > 127:
        target = rng.uniform(0, max(background_luma - 90, 10))
        return np.clip(colour * target / luma, 0, 255).astype(np.float32)
    target = rng.uniform(min(background_luma + 90, 245), 255)
    return np.clip(255 - (255 - colour) * (255 - target) / (255 - luma + 1e-3), 0, 255).astype(np.float32)


def paste(image: np.ndarray, alpha: np.ndarray, x: int, y: int, colour: np.ndarray, opacity: float) -> None:
    """Blend ink of ``colour`` into the float32 image at (x, y) (the patch's top-left), in place."""
    h, w = alpha.shape
    region = image[y:y + h, x:x + w]
    a = (alpha * opacity)[..., None]
    region *= 1 - a
    region += a * colour

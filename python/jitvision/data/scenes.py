"""Procedural backgrounds, lighting and camera effects (float32 BGR images in [0, 255]).

Clutter is kept to shapes that cannot pass for a digit (filled blobs, long straight lines, ruled paper), so every
digit-like mark in a scene is a labelled one.
"""
from __future__ import annotations

import cv2
import numpy as np


def value_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    """Smooth noise in [-1, 1]: a coarse random grid (about ``cells`` across) upsampled bicubically."""
    gh, gw = max(2, round(cells * h / max(h, w))), max(2, round(cells * w / max(h, w)))
    grid = rng.uniform(-1, 1, (gh, gw, channels)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def luminance(bgr: np.ndarray) -> np.ndarray:
    return bgr[..., 0] * 0.114 + bgr[..., 1] * 0.587 + bgr[..., 2] * 0.299


def _colour(rng: np.random.Generator, light: bool) -> np.ndarray:
    base = rng.uniform(150, 245) if light else rng.uniform(10, 110)
    return np.clip(base + rng.uniform(-35, 35, 3), 0, 255).astype(np.float32)


def _paper(rng, h, w):
    image = np.broadcast_to(_colour(rng, light=rng.random() < 0.8), (h, w, 3)).copy()
    image += value_noise(rng, h, w, int(rng.integers(3, 12))) * rng.uniform(3, 15)
    if rng.random() < 0.4:  # ruled or squared paper
        step = int(rng.integers(14, 40))
        line = np.clip(image[0, 0] + rng.uniform(-70, -25, 3), 0, 255)
        vertical = rng.random() < 0.5
        for y in range(int(rng.integers(0, step)), h, step):
            cv2.line(image, (0, y), (w - 1, y), line.tolist(), 1, cv2.LINE_AA)
        for x in range(int(rng.integers(0, step)), w, step) if vertical else ():
            cv2.line(image, (x, 0), (x, h - 1), line.tolist(), 1, cv2.LINE_AA)
    return image


def _gradient(rng, h, w):
    a, b = _colour(rng, rng.random() < 0.5), _colour(rng, rng.random() < 0.5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.7:
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
    else:
        t = np.hypot(xx - rng.uniform(0, w), yy - rng.uniform(0, h))
    t = ((t - t.min()) / (np.ptp(t) + 1e-6))[..., None]
    return a * (1 - t) + b * t


def _texture(rng, h, w):
    kind = rng.integers(3)
    if kind == 0:  # multi-octave colour noise (stone, fabric)
        image = np.broadcast_to(_colour(rng, rng.random() < 0.6), (h, w, 3)).copy()
        for octave, amp in ((4, 40), (16, 20), (64, 10)):
            image += value_noise(rng, h, w, octave, 3) * amp * rng.uniform(0.3, 1.0)
        return image
    if kind == 1:  # wood-like grain: stretched noise bent into stripes
        a, b = _colour(rng, True), _colour(rng, False)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle = rng.uniform(0, np.pi)
        across = xx * np.cos(angle) + yy * np.sin(angle) + value_noise(rng, h, w, 6)[..., 0] * rng.uniform(5, 25)
        t = (np.sin(across * rng.uniform(0.1, 0.5)) * 0.5 + 0.5)[..., None] * rng.uniform(0.2, 0.6)
        return a * (1 - t) + b * t
    # tiles or a checkerboard of two close colours
    a = _colour(rng, rng.random() < 0.6)
    b = np.clip(a + rng.uniform(-40, 40, 3), 0, 255)
    step = int(rng.integers(20, 80))
    yy, xx = np.mgrid[0:h, 0:w]
    mask = (((yy // step) + (xx // step)) % 2).astype(np.float32)[..., None]
    return a * (1 - mask) + b * mask


def _clutter(rng, image):
    h, w = image.shape[:2]
    for _ in range(int(rng.integers(2, 10))):
        colour = rng.uniform(0, 255, 3).tolist()
        kind = rng.integers(3)
        if kind == 0:  # filled ellipse
            centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            axes = (int(rng.uniform(8, w / 3)), int(rng.uniform(8, h / 3)))
            cv2.ellipse(image, centre, axes, rng.uniform(0, 180), 0, 360, colour, -1, cv2.LINE_AA)
        elif kind == 1:  # filled rectangle, never a thin bar (which would read as a 1)
            x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
            rw = rng.uniform(w / 10, w / 2)
            rh = rw * rng.uniform(0.4, 2.5)
            cv2.rectangle(image, (x, y), (x + int(rw), y + int(rh)), colour, -1)
        else:  # long straight line across the scene, much longer than any digit
            angle = rng.uniform(0, np.pi)
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), max(h, w)
            p1 = (int(cx - r * np.cos(angle)), int(cy - r * np.sin(angle)))
            p2 = (int(cx + r * np.cos(angle)), int(cy + r * np.sin(angle)))
            cv2.line(image, p1, p2, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
    return image


def background(rng: np.random.Generator, h: int, w: int, calm: bool = False) -> np.ndarray:
    """One random scene background: paper, gradient or texture, sometimes with clutter on it
    (``calm``: paper or gradient only, no clutter)."""
    kind = rng.choice(["paper", "gradient"]) if calm else rng.choice(["paper", "gradient", "texture"],
                                                                      p=[0.4, 0.25, 0.35])
    image = {"paper": _paper, "gradient": _gradient, "texture": _texture}[kind](rng, h, w).astype(np.float32)
    if not calm and rng.random() < 0.35:
        overlay = _clutter(rng, image.copy())
        image = cv2.addWeighted(image, 1 - (alpha := rng.uniform(0.3, 0.9)), overlay, alpha, 0)
    return np.clip(image, 0, 255)


def lighting(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Uneven light: a brightness ramp, sometimes a vignette or a soft shadow edge; multiplies the whole scene."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (xx / w - 0.5) * np.cos(angle) + (yy / h - 0.5) * np.sin(angle)
    gain = rng.uniform(0.8, 1.15) + ramp * rng.uniform(0, 0.5)
    if rng.random() < 0.3:
        r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * 2
        gain *= 1 - r2 * rng.uniform(0.1, 0.5)
    if rng.random() < 0.25:
        edge = (xx - rng.uniform(0, w)) * np.cos(angle) + (yy - rng.uniform(0, h)) * np.sin(angle)
        shade = 1 / (1 + np.exp(-edge / rng.uniform(2, 15)))
        gain *= 1 - shade * rng.uniform(0.15, 0.45)
    return np.clip(image * gain[..., None], 0, 255)


def camera(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Blur (focus or a little motion) and sensor noise; returns uint8."""
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.2))
    elif rng.random() < 0.2:
        k = int(rng.integers(3, 7))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1 / k
        m = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), rng.uniform(0, 180), 1)
        image = cv2.filter2D(image, -1, cv2.warpAffine(kernel, m, (k, k)))
    image = image + rng.normal(0, rng.uniform(0, 10), image.shape).astype(np.float32)
    return np.clip(image, 0, 255).round().astype(np.uint8)

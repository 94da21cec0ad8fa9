"""Demo inputs made from nothing outside the repository: photos of digits drawn with OpenCV.

Each digit 0-9 is drawn three times: twice "by pen" (strokes from a small built-in stroke table, jittered,
slanted, with varying pen width) and once in OpenCV's Hershey font. Most are dark ink on light, noisy, tinted
paper, some light on dark; the digit sits off-centre and does not fill the frame. Deterministic for a seed.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from jitvision.errors import OutputError

JPEG_QUALITY = 80
STYLES = ("pen1", "pen2", "font")


def _arc(cx, cy, ax, ay, start, end, step=10):
    """Points of an elliptic arc in the unit box; angles in degrees, 0 = right, 90 = down (image axes)."""
    t = np.radians(np.arange(start, end + step / 2, step if end >= start else -step))
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], 1)


def _line(*points):
    return np.array(points, np.float64)


# Each digit: strokes as point lists in a unit box (x right, y down), shaped like common handwriting.
STROKES = {
    0: [_arc(0.5, 0.5, 0.32, 0.48, 0, 360)],
    1: [_line((0.3, 0.2), (0.55, 0.0), (0.55, 1.0))],
    2: [np.vstack([_arc(0.5, 0.3, 0.32, 0.3, 200, 400), _line((0.12, 1.0), (0.9, 1.0))])],
    3: [_arc(0.48, 0.26, 0.3, 0.24, 200, 450), _arc(0.48, 0.74, 0.34, 0.26, 270, 520)],
    4: [_line((0.62, 1.0), (0.62, 0.0), (0.1, 0.68), (0.9, 0.68))],
    5: [np.vstack([_line((0.8, 0.0), (0.25, 0.0)), _arc(0.5, 0.68, 0.33, 0.32, 220, 500)])],
    6: [np.vstack([_arc(0.8, 0.7, 0.58, 0.7, 270, 180), _arc(0.5, 0.7, 0.3, 0.3, 180, 540)])],
    7: [_line((0.1, 0.0), (0.9, 0.0), (0.4, 1.0))],
    8: [_arc(0.5, 0.26, 0.26, 0.24, 0, 360), _arc(0.5, 0.72, 0.32, 0.27, 0, 360)],
    9: [_arc(0.5, 0.3, 0.3, 0.28, 0, 360), _line((0.8, 0.3), (0.72, 1.0))],
}


def draw_by_pen(digit: int, rng: np.random.Generator) -> np.ndarray:
    """Ink mask (uint8, 255 = ink) of one digit written with jittered strokes, in a roomy square canvas."""
    height = rng.uniform(45, 90)
    width = height * rng.uniform(0.6, 0.8)
    slant = rng.uniform(-0.3, 0.1)
    side = int(height * rng.uniform(1.5, 2.2))
    left, top = (rng.uniform(0.1, 0.9) * (side - width - 0.2 * height), rng.uniform(0.1, 0.9) * (side - height))
    mask = np.zeros((side, side), np.uint8)
    for stroke in STROKES[digit]:
        points = stroke + rng.normal(0, 0.015, stroke.shape)
        x = left + 0.1 * height + points[:, 0] * width - slant * (points[:, 1] - 0.5) * height
        y = top + points[:, 1] * height
        cv2.polylines(mask, [np.round(np.stack([x, y], 1) * 16).astype(np.int32)], False, 255,
                      int(rng.integers(3, 8)), cv2.LINE_AA, shift=4)
    return mask


def draw_in_font(digit: int, rng: np.random.Generator) -> np.ndarray:
    """Ink mask of one digit in the Hershey simplex font, placed off-centre."""
    text, font = str(digit), cv2.FONT_HERSHEY_SIMPLEX
    scale, thickness = rng.uniform(1.6, 2.6), int(rng.integers(4, 8))
    (w, h), baseline = cv2.getTextSize(text, font, scale, thickness)
    side = int(max(w, h + baseline) * rng.uniform(1.6, 2.2))
    left = int(rng.uniform(0.1, 0.9) * (side - w))
    bottom = h + int(rng.uniform(0.1, 0.9) * (side - h - baseline))
    mask = np.zeros((side, side), np.uint8)
    cv2.putText(mask, text, (left, bottom), font, scale, 255, thickness, cv2.LINE_AA)
    return mask


def to_photo(mask: np.ndarray, rng: np.random.Generator, light_on_dark: bool) -> np.ndarray:
    """Ink mask -> BGR photo: tinted paper, coloured ink, Gaussian noise."""
    ink = (mask.astype(np.float32) / 255)[..., None]
    paper = rng.uniform(180, 235) + rng.uniform(-12, 12, size=3)
    pen = rng.uniform(15, 70) + rng.uniform(-10, 10, size=3)
    if light_on_dark:
        paper, pen = 255 - paper, 255 - pen
    photo = paper * (1 - ink) + pen * ink + rng.normal(0, 6, size=ink.shape[:2] + (3,))
    return np.clip(photo, 0, 255).astype(np.uint8)


def write_samples(out_dir: str | Path, seed: int = 0) -> list[tuple[Path, int]]:
    """Write 30 JPEG digit photos (digits 0-9, each in STYLES); returns (path, digit) sorted by file name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for s, style in enumerate(STYLES):
        for digit in range(10):
            rng = np.random.default_rng([seed, s, digit])
            mask = draw_in_font(digit, rng) if style == "font" else draw_by_pen(digit, rng)
            image = to_photo(mask, rng, light_on_dark=(s * 10 + digit) % 3 == 2)
            path = out_dir / f"digit{digit}_{style}.jpg"
            if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise OutputError(f"cannot write {path}")
            written.append((path, digit))
    return sorted(written)

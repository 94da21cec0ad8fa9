"""A sample video of digits moving over a scene, with the true boxes of every frame (JSON lines).

Six different digits at a time, each drifting inside its own cell of a 3 x 2 grid (so they never overlap) and
replaced by a new one every ``swap_every`` frames, over a calm generated background with slowly changing light and
sensor noise. The digits are held-out MNIST digits when the
data is available, else digits drawn in OpenCV fonts; each truth line says which in ``digits``.
Truth line: ``{"frame": i, "boxes": [[x1, y1, x2, y2], ...], "cls": [...], "digits": "mnist-heldout"}``,
boxes in frame pixels around the ink (x2, y2 exclusive).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from jitvision.data import scenes
from jitvision.data.glyphs import MnistPool, font_glyph, ink_box, ink_colour, paste, transform
from jitvision.errors import OutputError, UsageError

GRID = (3, 2)  # columns, rows
FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}
SOURCES = {"mnist-heldout": "held-out MNIST digits", "cv2-font": "digits drawn in OpenCV fonts (MNIST not found)"}


def _digit_for_cell(rng, pool: Optional[MnistPool], digit: int, cell_w: int, cell_h: int):
    """(class, alpha patch) of one digit sized for a cell."""
    for _ in range(20):  # a rare glyph transforms into nothing or too large: draw another
        glyph = font_glyph(rng, digit) if pool is None else pool.sample(rng, digit)
        alpha = transform(glyph, rng.uniform(0.35, 0.55) * cell_h, rng.uniform(-10, 10), rng)
        if alpha is not None and alpha.shape[0] < cell_h and alpha.shape[1] < cell_w:
            return glyph.cls, alpha
    raise ValueError("could not draw a digit that fits its cell")


def write_video(out: Path, truth: Path, frames: int = 60, size: Tuple[int, int] = (640, 360), fps: float = 15.0,
                seed: int = 0, mnist_dir: Optional[Path] = None, swap_every: int = 20) -> Dict:
    """Write the video and its truth file; returns {"digits": count, "source": kind, "source_description"}.

    Every ``swap_every`` frames (0: never) each cell shows a new digit, so one video holds many digit images.
    """
    out, truth = Path(out), Path(truth)
    if out.suffix.lower() not in FOURCC:
        raise UsageError(f"{out}: the video must be .mp4 or .avi")
    w, h = size
    rng = np.random.default_rng([seed, 7])
    pool = MnistPool(Path(mnist_dir), "val") if mnist_dir is not None and Path(mnist_dir).is_dir() else None
    source = "cv2-font" if pool is None else "mnist-heldout"
    base = scenes.lighting(rng, scenes.background(rng, h, w, calm=True))
    cols, rows = GRID
    cell_w, cell_h = w // cols, h // rows
    cells = []
    for k in range(cols * rows):
        x0, y0 = (k % cols) * cell_w, (k // cols) * cell_h
        cells.append({"origin": (x0, y0),
                      "colour": ink_colour(rng, float(scenes.luminance(base[y0:y0 + cell_h, x0:x0 + cell_w]).mean())),
                      "freq": rng.uniform(0.5, 1.5, 2) * 2 * np.pi / max(frames, 1),
                      "phase": rng.uniform(0, 2 * np.pi, 2)})
    segments = -(-frames // swap_every) if swap_every > 0 else 1
    digits = [[_digit_for_cell(rng, pool, int(d), cell_w, cell_h) for d in rng.choice(10, len(cells), replace=False)]
              for _ in range(segments)]
    out.parent.mkdir(parents=True, exist_ok=True)
    truth.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*FOURCC[out.suffix.lower()]), fps, (w, h))
    if not writer.isOpened():
        raise OutputError(f"OpenCV cannot write {out} here")
    try:
        with open(truth, "w") as lines:
            for f in range(frames):
                frame = base * (1 + 0.08 * np.sin(2 * np.pi * f / max(frames, 1)))
                boxes, classes = [], []
                for cell, (cls, alpha) in zip(cells, digits[f // swap_every if swap_every > 0 else 0]):
                    t = (np.sin(cell["freq"] * f + cell["phase"]) + 1) / 2  # where in its cell, per axis
                    x = cell["origin"][0] + int(round(t[0] * (cell_w - alpha.shape[1])))
                    y = cell["origin"][1] + int(round(t[1] * (cell_h - alpha.shape[0])))
                    paste(frame, alpha, x, y, cell["colour"], 1.0)
                    bx1, by1, bx2, by2 = ink_box(alpha)
                    boxes.append([x + bx1, y + by1, x + bx2, y + by2])
                    classes.append(cls)
                frame = cv2.GaussianBlur(frame, (0, 0), 0.6) + rng.normal(0, 3, frame.shape)
                writer.write(np.clip(frame, 0, 255).round().astype(np.uint8))
                lines.write(json.dumps({"frame": f, "boxes": boxes, "cls": classes, "digits": source}) + "\n")
    finally:
        writer.release()
    return {"digits": segments * len(cells), "source": source, "source_description": SOURCES[source]}

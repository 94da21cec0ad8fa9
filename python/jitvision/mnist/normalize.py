"""Python reference of the MNIST-style digit normalisation, step for step the C++ core's
(native/core/src/digits.cpp, `normalize_digit`), so that `mnist predict --normalize` is an oracle for
`jitvision digits`: same torch operations, same thresholds, same order.

Any image of one digit -> 28x28, light ink on black: polarity from the paper (the median of the image's 2-pixel outer
ring), ink measured above the background, its bounding box found on a 3x3-blurred copy (isolated noise vanishes)
and then exactly on the unblurred one, scaled to fit 20x20 keeping its aspect (antialiased when shrinking), and
placed so that its centre of mass lands on the centre of the 28x28 field (whole-pixel shift, as MNIST did).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

FIELD = 28
BOX = 20
CENTRE = 13.5  # centre of the 28x28 field in pixel-index coordinates
MIN_CONTRAST = 16.0


class BlankImage(ValueError):
    """The image holds no ink to read."""


def _grey(image: np.ndarray) -> torch.Tensor:
    f = torch.from_numpy(np.ascontiguousarray(image)).float()
    if f.ndim == 2:
        return f
    if f.shape[2] == 1:
        return f[..., 0]
    return f[..., 0] * 0.114 + f[..., 1] * 0.587 + f[..., 2] * 0.299  # BGR(A), BT.601 luma


def _border_ring(grey: torch.Tensor) -> torch.Tensor:
    h, w = grey.shape
    r = 2 if min(h, w) >= 8 else 1
    if h <= 2 * r or w <= 2 * r:
        return grey.flatten()
    return torch.cat([grey[:r].flatten(), grey[h - r:].flatten(), grey[r:h - r, :r].flatten(),
                      grey[r:h - r, w - r:].flatten()])


def _extent(along: torch.Tensor):
    idx = torch.nonzero(along).flatten()
    if idx.numel() == 0:
        raise BlankImage("no digit found: nothing stands out from the background noise")
    return int(idx.min()), int(idx.max()) + 1


def mnist_style(image: np.ndarray) -> np.ndarray:
    """uint8 grey or BGR image of one digit -> float32 [28, 28] in [0, 255], light on dark. Raises BlankImage."""
    grey = _grey(image)
    ring = _border_ring(grey)  # paper: a tight crop can be mostly ink, so the image median is not
    background, lo, hi = ring.median(), grey.min(), grey.max()
    if float(hi - lo) < MIN_CONTRAST:
        raise BlankImage("no digit found: the image is blank (no contrast)")
    inverted = bool((background - lo) > (hi - background))
    sigma = 1.4826 * float((ring - background).abs().median())
    level = ((background - grey) if inverted else (grey - background)).clamp_min(0.0)

    blurred = F.avg_pool2d(level[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]
    peak = float(blurred.max())
    if peak < max(MIN_CONTRAST / 2, 3.0 * sigma / 3.0):
        raise BlankImage("no digit found: nothing stands out from the background noise")
    region = blurred > max(0.25 * peak, 5.0 * sigma / 3.0)
    ry0, ry1 = _extent(region.any(1))
    rx0, rx1 = _extent(region.any(0))
    h, w = level.shape
    ry0, rx0, ry1, rx1 = max(0, ry0 - 2), max(0, rx0 - 2), min(h, ry1 + 2), min(w, rx1 + 2)
    window = level[ry0:ry1, rx0:rx1]
    fine = window > max(4.0 * sigma, 0.02 * peak)
    fy0, fy1 = _extent(fine.any(1))
    fx0, fx1 = _extent(fine.any(0))
    ink_high = float(torch.quantile(window[fine], 0.95))

    floor = 2.0 * sigma
    span = max(ink_high - floor, 1.0)
    digit = ((window[fy0:fy1, fx0:fx1] - floor) / span).clamp(0.0, 1.0)
    bh, bw = digit.shape
    scale = BOX / max(bh, bw)
    nh, nw = max(1, round(bh * scale)), max(1, round(bw * scale))
    if (nh, nw) != (bh, bw):
        digit = F.interpolate(digit[None, None], size=(nh, nw), mode="bilinear", align_corners=False,
                              antialias=scale < 1.0)[0, 0].clamp(0.0, 1.0)

    total = float(digit.sum())
    cy = float((digit * torch.arange(nh, dtype=torch.float32)[:, None]).sum()) / total
    cx = float((digit * torch.arange(nw, dtype=torch.float32)[None, :]).sum()) / total
    top, left = round(CENTRE - cy), round(CENTRE - cx)
    field = torch.zeros(FIELD, FIELD)
    dy0, dx0 = max(0, top), max(0, left)
    dy1, dx1 = min(FIELD, top + nh), min(FIELD, left + nw)
    if dy1 > dy0 and dx1 > dx0:
        field[dy0:dy1, dx0:dx1] = digit[dy0 - top:dy1 - top, dx0 - left:dx1 - left]
    return (field * 255.0).numpy()

"""Training augmentation on HWC uint8 BGR images with boxes in pixels (xyxy): mosaic, random affine, HSV, flip.

Hyper-parameters (a dict, see :data:`DEFAULT_HYP`): ``mosaic`` probability, ``degrees``, ``translate``, ``scale``,
``shear`` for the affine, ``hsv_h/s/v`` gains, ``fliplr`` probability, and ``min_visible``: the smallest share of
a box's (scaled) area that must stay in view for its label to be kept.
"""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import cv2
import numpy as np

from jitvision.yolov5.letterbox import PAD_VALUE

DEFAULT_HYP: Dict[str, float] = {
    "mosaic": 1.0, "degrees": 0.0, "translate": 0.1, "scale": 0.5, "shear": 0.0,
    "hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4, "fliplr": 0.5, "min_visible": 0.1,
}


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, hgain: float, sgain: float, vgain: float) -> None:
    """Scale hue, saturation and value by random factors in [1-g, 1+g], in place (lookup tables on uint8 HSV)."""
    if not (hgain or sgain or vgain):
        return
    gains = rng.uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    merged = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    cv2.cvtColor(merged, cv2.COLOR_HSV2BGR, dst=image)


def flip_lr(image: np.ndarray, boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    w = image.shape[1]
    boxes = boxes.copy()
    boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
    return np.ascontiguousarray(image[:, ::-1]), boxes


def mosaic(images: List[np.ndarray], boxes: List[np.ndarray], size: int,
           rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Four images around a random centre of a 2size x 2size grey canvas: top-left, top-right, bottom-left,
    bottom-right, each touching the centre. Returns the canvas, the boxes (not clipped: parts may lie off the
    canvas, so a later step can tell how much of each is in view), in the order of the images."""
    canvas = np.full((2 * size, 2 * size, 3), PAD_VALUE, np.uint8)
    xc, yc = (int(v) for v in rng.uniform(size / 2, 3 * size / 2, 2))
    out_boxes = []
    for k, (image, b) in enumerate(zip(images, boxes)):
        h, w = image.shape[:2]
        right, bottom = k in (1, 3), k in (2, 3)
        x1, x2 = (xc, min(xc + w, 2 * size)) if right else (max(xc - w, 0), xc)
        y1, y2 = (yc, min(yc + h, 2 * size)) if bottom else (max(yc - h, 0), yc)
        sx1 = 0 if right else w - (x2 - x1)  # the source part that lands next to the centre
        sy1 = 0 if bottom else h - (y2 - y1)
        canvas[y1:y2, x1:x2] = image[sy1:sy1 + (y2 - y1), sx1:sx1 + (x2 - x1)]
        out_boxes.append(b + np.array([x1 - sx1, y1 - sy1] * 2, np.float32))
    return canvas, np.concatenate(out_boxes)


def affine_matrix(in_hw: Tuple[int, int], out_size: int, hyp: Dict[str, float], rng: np.random.Generator):
    """Centre the input on the origin, rotate/scale, shear, then move it to a random spot around the output's centre."""
    centre = np.eye(3)
    centre[0, 2], centre[1, 2] = -in_hw[1] / 2, -in_hw[0] / 2
    rot = np.eye(3)
    rot[:2] = cv2.getRotationMatrix2D((0, 0), rng.uniform(-hyp["degrees"], hyp["degrees"]),
                                      rng.uniform(1 - hyp["scale"], 1 + hyp["scale"]))
    shear = np.eye(3)
    shear[0, 1], shear[1, 0] = (math.tan(math.radians(v)) for v in rng.uniform(-hyp["shear"], hyp["shear"], 2))
    move = np.eye(3)
    move[0, 2], move[1, 2] = rng.uniform(0.5 - hyp["translate"], 0.5 + hyp["translate"], 2) * out_size
    return move @ shear @ rot @ centre, rot[0, 0] ** 2 + rot[0, 1] ** 2  # matrix, area scale


def random_affine(image: np.ndarray, boxes: np.ndarray, out_size: int, hyp: Dict[str, float],
                  rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp into an out_size square; boxes (clipped to the input first) become the bounds of their warped corners,
    clipped to the output. Returns the image, the kept boxes and the indices of the kept boxes."""
    matrix, area_scale = affine_matrix(image.shape[:2], out_size, hyp, rng)
    warped = cv2.warpAffine(image, matrix[:2], (out_size, out_size), flags=cv2.INTER_LINEAR,
                            borderValue=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    if not len(boxes):
        return warped, boxes, np.zeros(0, int)
    h, w = image.shape[:2]
    corners = boxes.clip(0, [w, h, w, h])[:, [0, 1, 2, 1, 0, 3, 2, 3]].reshape(-1, 2)
    corners = (np.hstack([corners, np.ones((len(corners), 1))]) @ matrix[:2].T).reshape(-1, 4, 2)
    moved = np.hstack([corners.min(1), corners.max(1)]).clip(0, out_size).astype(np.float32)
    keep = np.flatnonzero(box_candidates(boxes, moved, area_scale, hyp["min_visible"]))
    return warped, moved[keep], keep


def box_candidates(before: np.ndarray, after: np.ndarray, area_scale: float, min_visible: float,
                   min_side: float = 2.0, max_aspect: float = 20.0) -> np.ndarray:
    """Boxes still worth a label: sides over 2 px, not a sliver, enough of the (scaled) area in view."""
    w0, h0 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(w1 / (h1 + 1e-9), h1 / (w1 + 1e-9))
    visible = w1 * h1 / (w0 * h0 * area_scale + 1e-9)
    return (w1 > min_side) & (h1 > min_side) & (aspect < max_aspect) & (visible > min_visible)

"""Validation: run a detector over a YOLO-format image folder and score it (:mod:`metrics`).

Every image goes through the reference pipeline (rect letterbox, model, NMS, scaling back) as in ``detect``;
images whose letterboxed shapes agree are batched. Works for eager models (training) and TorchScript files.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

import cv2
import numpy as np
import torch

from jitvision.yolov5.dataset import DatasetError, image_files, label_file, read_labels, xywhn_to_xyxy
from jitvision.yolov5.letterbox import letterbox, to_input_tensor
from jitvision.yolov5.metrics import DetectionMetrics, DetectionStats
from jitvision.yolov5.nms import non_max_suppression, scale_boxes

VAL_CONF = 0.001
VAL_IOU = 0.6
VAL_MAX_DET = 300


@dataclass
class ValSet:
    files: List[Path]
    images: List[np.ndarray]  # BGR uint8, as read
    boxes: List[np.ndarray]  # ground truth xyxy pixels
    classes: List[np.ndarray]


def load_val_set(folder: Path, nc: int) -> ValSet:
    files = image_files(folder)
    images, boxes, classes = [], [], []
    for f in files:
        image = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"cannot read image {f}")
        labels = read_labels(label_file(f), nc)
        images.append(image)
        boxes.append(xywhn_to_xyxy(labels, image.shape[1], image.shape[0]))
        classes.append(labels[:, 0].astype(int))
    return ValSet(files, images, boxes, classes)


@dataclass
class ValResult:
    metrics: DetectionMetrics
    ms_per_image: float  # letterbox + model + NMS


def evaluate(predict: Callable[[torch.Tensor], torch.Tensor], val: ValSet, nc: int, img_size: int, stride: int,
             dtype: torch.dtype = torch.float32, device: str = "cpu", conf_thres: float = VAL_CONF,
             iou_thres: float = VAL_IOU, batch: int = 16) -> ValResult:
    """``predict(x)`` maps a float input batch [B, 3, H, W] to decoded rows [B, N, 5+nc]."""
    stats = DetectionStats(nc)
    start = time.perf_counter()
    padded = [letterbox(image, (img_size, img_size), stride, rect=True)[0] for image in val.images]
    i = 0
    while i < len(padded):
        j = i + 1
        while j < len(padded) and j - i < batch and padded[j].shape == padded[i].shape:
            j += 1
        x = torch.cat([to_input_tensor(p, dtype) for p in padded[i:j]]).to(device)
        with torch.no_grad():
            rows = predict(x)
        for k, n in enumerate(range(i, j)):
            found = non_max_suppression(rows[k].cpu(), conf_thres, iou_thres, max_det=VAL_MAX_DET)
            boxes = scale_boxes(found[:, :4], padded[n].shape[:2], val.images[n].shape[:2])
            stats.add(boxes.numpy(), found[:, 4].numpy(), found[:, 5].numpy().astype(int), val.boxes[n],
                      val.classes[n])
        i = j
    seconds = time.perf_counter() - start
    return ValResult(stats.compute(), 1000 * seconds / max(len(padded), 1))


def format_report(result: ValResult, names: List[str]) -> str:
    m = result.metrics
    lines = [f"{'class':>10} {'labels':>7} {'AP50':>7} {'AP50-95':>8}"]
    for c in sorted(m.n_gt):
        lines.append(f"{names[c]:>10} {m.n_gt[c]:>7} {m.ap50[c]:>7.3f} {m.ap[c]:>8.3f}")
    lines.append(f"{'all':>10} {sum(m.n_gt.values()):>7} {m.map50:>7.3f} {m.map:>8.3f}")
    lines.append(f"{m.n_images} images: precision {m.precision:.3f}, recall {m.recall:.3f} (IoU 0.5, conf >= 0.25); "
                 f"mAP@0.5 {m.map50:.4f}, mAP@0.5:0.95 {m.map:.4f}; {result.ms_per_image:.1f} ms per image")
    return "\n".join(lines)

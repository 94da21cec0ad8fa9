"""Detection metrics the COCO way: per-class 101-point interpolated AP at IoU 0.50:0.05:0.95.

Matching, per image and IoU threshold: detections in descending confidence order each take the unmatched ground
truth box of their class with the highest IoU, if that IoU reaches the threshold; otherwise they are false
positives (so a duplicate of a matched box is a false positive). Classes without ground truth are left out of the
means; with no ground truth at all the mAPs are NaN (undefined).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0, 1, 101)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [N, M] of xyxy boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-12)


def match(det_boxes, det_scores, det_classes, gt_boxes, gt_classes, thresholds=IOU_THRESHOLDS) -> np.ndarray:
    """True-positive flags [N, T] for one image's detections at each IoU threshold (greedy, by confidence)."""
    det_classes, gt_classes = np.asarray(det_classes).reshape(-1), np.asarray(gt_classes).reshape(-1)
    tp = np.zeros((len(det_classes), len(thresholds)), bool)
    if not len(det_classes) or not len(gt_classes):
        return tp
    iou = box_iou(det_boxes, gt_boxes)
    iou[det_classes[:, None] != gt_classes[None, :]] = -1
    order = np.argsort(-np.asarray(det_scores, np.float64), kind="stable")
    for t, threshold in enumerate(thresholds):
        taken = np.zeros(len(gt_classes), bool)
        for d in order:
            candidates = np.where(taken, -1, iou[d])
            g = int(candidates.argmax())
            if candidates[g] >= threshold:
                taken[g] = True
                tp[d, t] = True
    return tp


def average_precision(tp: np.ndarray, n_gt: int) -> float:
    """101-point interpolated AP from TP flags of detections sorted by descending confidence; NaN when n_gt is 0."""
    if n_gt == 0:
        return float("nan")
    if not len(tp):
        return 0.0
    tp = np.asarray(tp, bool)
    tps, fps = np.cumsum(tp), np.cumsum(~tp)
    recall = tps / n_gt
    precision = np.maximum.accumulate((tps / (tps + fps))[::-1])[::-1]  # best precision at this recall or more
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(sampled.mean())


@dataclass
class DetectionMetrics:
    precision: float  # at IoU 0.5 over detections with confidence >= pr_conf, all classes together
    recall: float
    map50: float
    map: float  # mean over IoU 0.50:0.05:0.95
    ap50: Dict[int, float]  # per class with ground truth
    ap: Dict[int, float]
    n_gt: Dict[int, int]
    n_images: int

    def as_dict(self) -> Dict:
        return {"precision": self.precision, "recall": self.recall, "mAP50": self.map50, "mAP50-95": self.map,
                "images": self.n_images, "labels": int(sum(self.n_gt.values()))}


class DetectionStats:
    """Accumulates detections and ground truth image by image; :meth:`compute` gives the metrics."""

    def __init__(self, nc: int):
        self.nc = nc
        self.scores: List[np.ndarray] = []
        self.classes: List[np.ndarray] = []
        self.tp: List[np.ndarray] = []
        self.gt_classes: List[np.ndarray] = []

    def add(self, det_boxes, det_scores, det_classes, gt_boxes, gt_classes) -> None:
        self.tp.append(match(det_boxes, det_scores, det_classes, gt_boxes, gt_classes))
        self.scores.append(np.asarray(det_scores, np.float64).reshape(-1))
        self.classes.append(np.asarray(det_classes).reshape(-1).astype(int))
        self.gt_classes.append(np.asarray(gt_classes).reshape(-1).astype(int))

    def compute(self, pr_conf: float = 0.25) -> DetectionMetrics:
        def cat(xs, shape):
            return np.concatenate(xs) if xs else np.zeros(shape)

        scores, classes = cat(self.scores, (0,)), cat(self.classes, (0,)).astype(int)
        tp = cat(self.tp, (0, len(IOU_THRESHOLDS))).astype(bool)
        gt_counts = np.bincount(cat(self.gt_classes, (0,)).astype(int), minlength=self.nc)
        ap50, ap = {}, {}
        for c in np.flatnonzero(gt_counts):
            mine = np.flatnonzero(classes == c)
            ranked = tp[mine[np.argsort(-scores[mine], kind="stable")]]
            per_threshold = [average_precision(ranked[:, t], int(gt_counts[c])) for t in range(len(IOU_THRESHOLDS))]
            ap50[int(c)], ap[int(c)] = per_threshold[0], float(np.mean(per_threshold))
        confident = scores >= pr_conf
        hits = int(tp[confident, 0].sum())
        n_gt = int(gt_counts.sum())
        return DetectionMetrics(
            precision=hits / int(confident.sum()) if confident.any() else 0.0,
            recall=hits / n_gt if n_gt else float("nan"),
            map50=float(np.mean(list(ap50.values()))) if ap50 else float("nan"),
            map=float(np.mean(list(ap.values()))) if ap else float("nan"),
            ap50=ap50, ap=ap, n_gt={int(c): int(gt_counts[c]) for c in np.flatnonzero(gt_counts)},
            n_images=len(self.gt_classes))

"""Decoded rows -> final boxes (YOLOv5 reference semantics); the C++ app mirrors these two functions."""
from typing import Optional, Sequence, Tuple

import torch
import torchvision

MAX_NMS_BOXES = 30000  # candidates kept for NMS, highest scores first


def class_offset(boxes: torch.Tensor) -> float:
    """What boxes are shifted by per class so that only same-class boxes can overlap: the coordinates' span + 1."""
    return float(boxes.max() - boxes.min()) + 1.0 if boxes.numel() else 1.0


def non_max_suppression(rows: torch.Tensor, conf_thres: float = 0.25, iou_thres: float = 0.45,
                        classes: Optional[Sequence[int]] = None, max_det: int = 1000,
                        agnostic: bool = False) -> torch.Tensor:
    """Rows [N, 5+nc] (cx, cy, w, h, obj, class probs) of one image -> [K, 6] (x1, y1, x2, y2, score, cls).

    1. keep rows with obj > conf_thres; 2. score = obj * class prob, boxes to corners; 3. best class only,
    keep score > conf_thres (and cls in ``classes`` if given); 4. sort by score, keep the first 30000;
    5-6. greedy NMS (IoU > iou_thres suppresses) on boxes offset by cls * class_offset(boxes); 7. keep the first
    max_det. ``agnostic``: no class offset, so boxes of different classes suppress each other too.
    Computed in float32 whatever the model's dtype.
    """
    x = rows.float()
    x = x[x[:, 4] > conf_thres]
    scores = x[:, 5:] * x[:, 4:5]
    cx, cy, w, h = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
    boxes = torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), 1)
    score, cls = scores.max(1)
    keep = score > conf_thres
    if classes is not None:
        keep &= torch.isin(cls, torch.tensor(list(classes), dtype=cls.dtype))
    boxes, score, cls = boxes[keep], score[keep], cls[keep]
    order = score.argsort(descending=True)[:MAX_NMS_BOXES]
    boxes, score, cls = boxes[order], score[order], cls[order]
    offset = 0.0 if agnostic else class_offset(boxes)
    kept = torchvision.ops.nms(boxes + cls[:, None].float() * offset, score, iou_thres)[:max_det]
    return torch.cat((boxes[kept], score[kept, None], cls[kept, None].float()), 1)


def scale_boxes(boxes: torch.Tensor, input_hw: Tuple[int, int], image_hw: Tuple[int, int]) -> torch.Tensor:
    """Boxes (x1, y1, x2, y2) in letterboxed-input pixels -> original image pixels, clamped to the image.

    gain = min(in_h/h0, in_w/w0); pad = ((in_w - w0 gain)/2, (in_h - h0 gain)/2), not rounded.
    """
    (in_h, in_w), (h0, w0) = input_hw, image_hw
    gain = min(in_h / h0, in_w / w0)
    pad_x, pad_y = (in_w - w0 * gain) / 2, (in_h - h0 * gain) / 2
    out = boxes.clone()
    out[:, [0, 2]] = ((out[:, [0, 2]] - pad_x) / gain).clamp(0, w0)
    out[:, [1, 3]] = ((out[:, [1, 3]] - pad_y) / gain).clamp(0, h0)
    return out

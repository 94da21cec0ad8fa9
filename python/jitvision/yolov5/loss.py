"""The YOLOv5 training loss: CIoU box regression, objectness BCE against IoU, class BCE.

Target assignment per level: a target goes to every anchor whose width and height are both within a factor
``anchor_t`` (4) of its own, in the cell holding its centre and in the two neighbouring cells nearest to the
centre (one across, one up or down), because the decoded centre 2 sigmoid(t) - 0.5 reaches 0.5 beyond its cell.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import Tensor, nn

from jitvision.yolov5.model import Yolov5

LEVEL_BALANCE = [4.0, 1.0, 0.4]  # objectness weight of the stride 8, 16, 32 levels


def raw_outputs(model: Yolov5, images: Tensor) -> List[Tensor]:
    """The head's undecoded outputs per level, as [B, na, ny, nx, 5+nc]."""
    detect = model.detect
    outs = []
    for conv, x in zip(detect.m, model.features(images)):
        p = conv(x)
        b, _, ny, nx = p.shape
        outs.append(p.view(b, detect.na, detect.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
    return outs


def ciou(a: Tensor, b: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU of paired (cx, cy, w, h) boxes: IoU - centre distance^2 / enclosing diagonal^2 - alpha v."""
    a1, a2 = a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2
    b1, b2 = b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(0).prod(1)
    union = a[:, 2:].prod(1) + b[:, 2:].prod(1) - inter + eps
    iou = inter / union
    diagonal = (torch.max(a2, b2) - torch.min(a1, b1)).pow(2).sum(1) + eps
    distance = (a[:, :2] - b[:, :2]).pow(2).sum(1)
    v = (4 / math.pi ** 2) * (torch.atan(b[:, 2] / (b[:, 3] + eps)) - torch.atan(a[:, 2] / (a[:, 3] + eps))).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + 1 + eps)
    return iou - distance / diagonal - alpha * v


def init_detect_biases(model: Yolov5, objects_per_image: float = 8.0, reference_size: int = 640) -> None:
    """Start objectness near the prior of ~8 objects per 640 image and class scores near 0.6/nc,
    so the first steps are not swamped by confident false positives."""
    detect = model.detect
    with torch.no_grad():
        for conv, stride in zip(detect.m, detect.strides):
            bias = conv.bias.view(detect.na, -1)
            bias[:, 4] += math.log(objects_per_image / (reference_size / stride) ** 2)
            bias[:, 5:] += math.log(0.6 / (detect.nc - 0.99))


class YoloLoss:
    """``loss(outputs, targets)`` with ``outputs`` from :func:`raw_outputs` and targets [n, 6] =
    (image index, cls, cx, cy, w, h), normalised; returns (total loss x batch size, detached (box, obj, cls))."""

    def __init__(self, model: Yolov5, img_size: int, box: float = 0.05, obj: float = 1.0, cls: float = 0.5,
                 anchor_t: float = 4.0):
        detect = model.detect
        self.nl, self.na, self.nc = detect.nl, detect.na, detect.nc
        if self.nl != len(LEVEL_BALANCE):
            raise ValueError(f"the loss is defined for {len(LEVEL_BALANCE)} detection levels, not {self.nl}")
        self.anchors = detect.anchors.detach().float()  # [nl, na, 2], grid units
        # gains as published: objectness scales with the image area, classes with the class count
        self.box_gain = box * 3 / self.nl
        self.obj_gain = obj * (img_size / 640) ** 2 * 3 / self.nl
        self.cls_gain = cls * self.nc / 80 * 3 / self.nl
        self.anchor_t = anchor_t
        self.bce = nn.BCEWithLogitsLoss()

    def assign(self, level: int, shape: Tuple[int, int], targets: Tensor):
        """For one level: (image, anchor, gy, gx) indices, target boxes relative to their cell, anchors, classes."""
        ny, nx = shape
        anchors = self.anchors[level].to(targets.device)
        grid = torch.tensor([nx, ny, nx, ny], device=targets.device, dtype=torch.float32)
        t = targets[:, 2:6] * grid
        ratio = t[None, :, 2:4] / anchors[:, None]
        anchor_idx, target_idx = (torch.max(ratio, 1 / ratio).max(2).values < self.anchor_t).nonzero(as_tuple=True)
        t = t[target_idx]
        gxy = t[:, :2]
        inverse = grid[:2] - gxy
        near_low = (gxy % 1 < 0.5) & (gxy > 1)  # centre in the left/top half: also the cell to the left/above
        near_high = (inverse % 1 < 0.5) & (inverse > 1)  # right/bottom half: the cell to the right/below
        choices = [torch.ones_like(near_low[:, 0]), near_low[:, 0], near_low[:, 1], near_high[:, 0], near_high[:, 1]]
        shifts = torch.tensor([[0, 0], [-0.5, 0], [0, -0.5], [0.5, 0], [0, 0.5]], device=targets.device)
        sel = torch.cat([m.nonzero(as_tuple=True)[0] for m in choices])
        offset = torch.cat([s.expand(int(m.sum()), 2) for m, s in zip(choices, shifts)])
        cell = (gxy[sel] + offset).long()
        cell[:, 0].clamp_(0, nx - 1)
        cell[:, 1].clamp_(0, ny - 1)
        image = targets[target_idx[sel], 0].long()
        cls = targets[target_idx[sel], 1].long()
        a = anchor_idx[sel]
        box = torch.cat((gxy[sel] - cell, t[sel, 2:4]), 1)
        return (image, a, cell[:, 1], cell[:, 0]), box, anchors[a], cls

    def __call__(self, outputs: List[Tensor], targets: Tensor):
        device = outputs[0].device
        lbox, lobj, lcls = (torch.zeros((), device=device) for _ in range(3))
        for level, p in enumerate(outputs):
            tobj = torch.zeros(p.shape[:4], device=device, dtype=p.dtype)
            (b, a, gy, gx), tbox, anchors, cls = self.assign(level, p.shape[2:4], targets)
            if len(b):
                pred = p[b, a, gy, gx].float()
                pxy = pred[:, :2].sigmoid() * 2 - 0.5
                pwh = (pred[:, 2:4].sigmoid() * 2) ** 2 * anchors
                iou = ciou(torch.cat((pxy, pwh), 1), tbox)
                lbox = lbox + (1 - iou).mean()
                # several targets may claim one anchor cell: it keeps the highest IoU
                flat = ((b * self.na + a) * p.shape[2] + gy) * p.shape[3] + gx
                tobj.view(-1).scatter_reduce_(0, flat, iou.detach().clamp(0).to(tobj.dtype), "amax")
                if self.nc > 1:
                    onehot = torch.zeros_like(pred[:, 5:])
                    onehot[torch.arange(len(cls), device=device), cls] = 1
                    lcls = lcls + self.bce(pred[:, 5:], onehot)
            lobj = lobj + self.bce(p[..., 4].float(), tobj.float()) * LEVEL_BALANCE[level]
        lbox, lobj, lcls = lbox * self.box_gain, lobj * self.obj_gain, lcls * self.cls_gain
        batch = outputs[0].shape[0]
        return (lbox + lobj + lcls) * batch, torch.stack((lbox, lobj, lcls)).detach()

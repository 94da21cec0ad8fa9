"""YOLO-format data sets: a small YAML naming the splits and classes, images with sibling ``labels`` folders.

``DATA.yaml``: ``path`` (root, default: the YAML's folder), ``train`` and ``val`` (image folders, relative to
``path``), ``names`` (list, or dict index -> name), optional ``hyp`` (augmentation settings for this data, e.g.
``fliplr: 0.0`` where mirrored objects are not objects). The label file of ``.../images/x/a.jpg`` is
``.../labels/x/a.txt``: one ``cls cx cy w h`` line per object, coordinates normalised to [0, 1]; no file = no objects.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
import yaml

from jitvision.errors import InputError
from jitvision.extensions import IMAGE_EXTENSIONS
from jitvision.yolov5.augment import DEFAULT_HYP, flip_lr, hsv_jitter, mosaic, random_affine
from jitvision.yolov5.letterbox import letterbox


class DatasetError(InputError):
    """A data YAML, image or label file that cannot be used."""


@dataclass
class DataConfig:
    train: Path
    val: Path
    names: List[str]
    hyp: Dict[str, float] = field(default_factory=dict)

    @property
    def nc(self) -> int:
        return len(self.names)


def _read_yaml_mapping(path: Path) -> Dict:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"cannot read data YAML {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"data YAML {path} is not a mapping")
    missing = [k for k in ("train", "val", "names") if k not in raw]
    if missing:
        raise DatasetError(f"data YAML {path} lacks {', '.join(missing)}")
    return raw


def _class_names(raw: Dict, path: Path) -> List[str]:
    """``names`` as a list (a mapping is read by index 0..n-1), checked against ``nc`` when given."""
    names = raw["names"]
    if isinstance(names, dict):
        names = [names[i] for i in range(len(names))]
    names = [str(n) for n in names]
    if "nc" in raw and int(raw["nc"]) != len(names):
        raise DatasetError(f"data YAML {path}: nc is {raw['nc']} but {len(names)} names are listed")
    return names


def _hyperparameters(raw: Dict, path: Path) -> Dict[str, float]:
    hyp = raw.get("hyp") or {}
    unknown = sorted(set(hyp) - set(DEFAULT_HYP))
    if unknown:
        raise DatasetError(f"data YAML {path}: unknown hyp keys {unknown} (known: {sorted(DEFAULT_HYP)})")
    return {k: float(v) for k, v in hyp.items()}


def load_data_config(path: str | os.PathLike) -> DataConfig:
    path = Path(path)
    raw = _read_yaml_mapping(path)
    root = Path(raw.get("path") or path.parent)
    root = root if root.is_absolute() else path.parent / root
    names, hyp = _class_names(raw, path), _hyperparameters(raw, path)
    return DataConfig(root / raw["train"], root / raw["val"], names, hyp)


def image_files(folder: Path) -> List[Path]:
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DatasetError(f"image folder {folder} holds no images")
    return files


def label_file(image: Path) -> Path:
    parts = list(image.parts)
    if "images" not in parts:
        raise DatasetError(f"{image} is not below an 'images' folder, so its labels cannot be found")
    i = len(parts) - 1 - parts[::-1].index("images")
    parts[i] = "labels"
    return Path(*parts).with_suffix(".txt")


def read_labels(path: Path, nc: int) -> np.ndarray:
    """[n, 5] float32 rows (cls, cx, cy, w, h); empty when the file does not exist."""
    if not path.is_file():
        return np.zeros((0, 5), np.float32)
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if any(len(r) != 5 for r in rows):
        raise DatasetError(f"{path}: every line must be 'cls cx cy w h'")
    labels = np.array(rows, np.float32).reshape(-1, 5)
    if len(labels) and (labels[:, 0].min() < 0 or labels[:, 0].max() >= nc or labels[:, 0] % 1).any():
        raise DatasetError(f"{path}: class indices must be integers in [0, {nc - 1}]")
    if len(labels) and ((labels[:, 1:] < 0) | (labels[:, 1:] > 1)).any():
        raise DatasetError(f"{path}: coordinates must be normalised to [0, 1]")
    return labels


def xywhn_to_xyxy(labels: np.ndarray, w: int, h: int) -> np.ndarray:
    cx, cy, bw, bh = labels[:, 1] * w, labels[:, 2] * h, labels[:, 3] * w, labels[:, 4] * h
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1).astype(np.float32)


class YoloDataset(torch.utils.data.Dataset):
    """Training samples: every image kept in memory with its long side resized to ``size``; each item is a mosaic
    (probability ``hyp['mosaic']``) or a letterboxed image, then random affine, HSV jitter and flips.

    An item is (uint8 tensor [3, size, size] RGB, labels [n, 6] as (0, cls, cx, cy, w, h) normalised).
    """

    def __init__(self, folder: Path, nc: int, size: int, hyp: Optional[Dict[str, float]] = None,
                 seed: int = 0):
        self.files = image_files(folder)
        self.size, self.seed = size, seed
        self.hyp = {**DEFAULT_HYP, **(hyp or {})}
        self.images: List[np.ndarray] = []
        self.boxes: List[np.ndarray] = []  # xyxy pixels of the cached image
        self.classes: List[np.ndarray] = []
        for f in self.files:
            image = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if image is None:
                raise DatasetError(f"cannot read image {f}")
            h, w = image.shape[:2]
            r = size / max(h, w)
            if r != 1:
                image = cv2.resize(image, (max(1, round(w * r)), max(1, round(h * r))),
                                   interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
            labels = read_labels(label_file(f), nc)
            self.images.append(image)
            self.boxes.append(xywhn_to_xyxy(labels, image.shape[1], image.shape[0]))
            self.classes.append(labels[:, 0].astype(np.int64))
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.files)

    def _rng(self, index: int) -> np.random.Generator:
        # differs per epoch and item, identical across worker processes and reruns
        return np.random.default_rng([self.seed, self.epoch, index])

    def _letterboxed(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        image, geometry = letterbox(self.images[index], (self.size, self.size), rect=False)
        r = geometry.resized_w / self.images[index].shape[1]
        return image, self.boxes[index] * r + np.array([geometry.left, geometry.top] * 2, np.float32)

    def __getitem__(self, index: int):
        rng = self._rng(index)
        hyp = self.hyp
        classes = self.classes[index]
        if rng.random() < hyp["mosaic"]:
            picks = [index, *rng.integers(0, len(self), 3)]
            image, boxes = mosaic([self.images[i] for i in picks], [self.boxes[i] for i in picks], self.size, rng)
            classes = np.concatenate([self.classes[i] for i in picks])
        else:
            image, boxes = self._letterboxed(index)
        image, boxes, keep = random_affine(image, boxes, self.size, hyp, rng)
        classes = classes[keep]
        hsv_jitter(image, rng, hyp["hsv_h"], hyp["hsv_s"], hyp["hsv_v"])
        if rng.random() < hyp["fliplr"]:
            image, boxes = flip_lr(image, boxes)
        h, w = image.shape[:2]
        labels = np.zeros((len(boxes), 6), np.float32)
        labels[:, 1] = classes
        labels[:, 2] = (boxes[:, 0] + boxes[:, 2]) / 2 / w
        labels[:, 3] = (boxes[:, 1] + boxes[:, 3]) / 2 / h
        labels[:, 4] = (boxes[:, 2] - boxes[:, 0]) / w
        labels[:, 5] = (boxes[:, 3] - boxes[:, 1]) / h
        chw_rgb = np.ascontiguousarray(image.transpose(2, 0, 1)[::-1])
        return torch.from_numpy(chw_rgb), torch.from_numpy(labels)

    @staticmethod
    def collate(batch):
        images, labels = zip(*batch)
        for i, lab in enumerate(labels):
            lab[:, 0] = i
        return torch.stack(images), torch.cat(labels)

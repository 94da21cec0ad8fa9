"""Reference detector: model file + images/videos -> boxes, with the YOLOv5 reference semantics.

It is the oracle the C++ app is tested against: letterbox (:mod:`letterbox`), model, NMS and box scaling
(:mod:`nms`), nothing else. Model files:

- our TorchScript export (``jitvision.json``): letterbox mode, size and names from the metadata;
- an official TorchScript export (``config.txt`` only): square letterbox at the recorded shape;
- a ``.pt`` checkpoint: imported safely in memory, rect letterbox (like the official detector with ``.pt`` weights).
"""
import glob
import json
import os
import zipfile
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from jitvision.yolov5.checkpoint import import_checkpoint
from jitvision.yolov5.errors import ModelFileError, SourceError
from jitvision.yolov5.letterbox import letterbox, to_input_tensor
from jitvision.yolov5.model import fuse_conv_bn
from jitvision.yolov5.nms import non_max_suppression, scale_boxes
from jitvision.yolov5.torchscript import load_torchscript

IMAGE_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".avi", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".webm", ".wmv"}


@dataclass
class Detector:
    module: Callable[[torch.Tensor], Tuple[torch.Tensor, ...]]
    names: List[str]
    stride: int
    rect: bool  # rect letterbox (dynamic models) or square (fixed-size models)
    img_size: int  # default --img for rect models
    fixed_shape: Optional[Tuple[int, int]]  # (h, w) a fixed-size model takes
    dtype: torch.dtype  # the model's input dtype (its parameters')
    kind: str  # "jitvision", "official" or "checkpoint"

    def input_shape(self, img: Optional[int]) -> Tuple[int, int]:
        """Target (h, w) of the letterbox for ``--img`` (None: the model's own size)."""
        if self.fixed_shape is not None:
            if img is not None and (img, img) != self.fixed_shape:
                raise ModelFileError(f"this model takes only {self.fixed_shape[0]}x{self.fixed_shape[1]} inputs; "
                                     f"--img {img} does not fit it")
            return self.fixed_shape
        img = self.img_size if img is None else img
        if img % self.stride:
            raise ModelFileError(f"--img {img} is not a multiple of the model stride {self.stride}")
        return img, img


def _is_checkpoint(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/data.pkl") for n in names) and not any("/code/" in n for n in names)


def load_detector(path: str) -> Detector:
    if _is_checkpoint(path):
        imported = import_checkpoint(path)
        model = fuse_conv_bn(imported.model)
        return Detector(model, model.names, max(model.strides), True, 640, None, torch.float32, "checkpoint")
    module, extras = load_torchscript(path)
    params = list(module.parameters())
    dtype = params[0].dtype if params else torch.float32
    if "jitvision.json" in extras:
        meta = json.loads(extras["jitvision.json"])
        if meta.get("task") != "detect":
            raise ModelFileError(f"{path} is a jitvision '{meta.get('task')}' model, not a detector")
        img = int(meta["img_size"])
        fixed = None if meta["dynamic"] else (img, img)
        return Detector(module, list(meta["names"]), int(meta["stride"]), meta["letterbox"] == "rect", img, fixed,
                        dtype, "jitvision")
    if "config.txt" in extras:
        config = json.loads(extras["config.txt"])
        names = config["names"]
        names = [names[str(i)] for i in range(len(names))] if isinstance(names, dict) else list(names)
        h, w = config["shape"][2:]
        return Detector(module, names, int(config["stride"]), False, max(h, w), (int(h), int(w)), dtype, "official")
    raise ModelFileError(f"{path} carries neither jitvision.json nor config.txt: class names, stride and input "
                         "size are unknown; export it with `python -m jitvision yolov5 import`")


def detect(detector: Detector, image_bgr: np.ndarray, img: Optional[int] = None, conf: float = 0.25,
           iou: float = 0.45, classes: Optional[Sequence[int]] = None, max_det: int = 1000) -> List[Dict]:
    """Boxes for one HWC BGR uint8 image, in its own pixels: dicts with cls, name, conf, xyxy."""
    padded, _ = letterbox(image_bgr, detector.input_shape(img), detector.stride, detector.rect)
    x = to_input_tensor(padded, detector.dtype)
    with torch.no_grad():
        out = detector.module(x)
    rows = (out[0] if isinstance(out, (tuple, list)) else out)[0]  # contract: (rows,); a bare tensor also works
    found = non_max_suppression(rows, conf, iou, classes, max_det)
    found[:, :4] = scale_boxes(found[:, :4], padded.shape[:2], image_bgr.shape[:2])
    return [{"cls": int(c), "name": detector.names[int(c)], "conf": float(s), "xyxy": [float(v) for v in box]}
            for *box, s, c in found.tolist()]


def _expand(source: str) -> List[str]:
    if os.path.isdir(source):
        found = sorted(os.path.join(source, n) for n in os.listdir(source)
                       if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        if not found:
            raise SourceError(f"directory {source} holds no image or video files")
        return found
    if glob.has_magic(source):
        found = sorted(p for p in glob.glob(source, recursive=True) if os.path.isfile(p))
        if not found:
            raise SourceError(f"no files match {source}")
        return found
    if not os.path.isfile(source):
        raise SourceError(f"source {source} does not exist")
    return [source]


def iter_frames(sources: Sequence[str]) -> Iterator[Tuple[str, int, np.ndarray]]:
    """(path, frame index, BGR image) for image files, directories, globs and video files, in order."""
    for path in (p for s in sources for p in _expand(s)):
        if os.path.splitext(path)[1].lower() not in VIDEO_SUFFIXES:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is not None:
                yield path, 0, image
                continue
        capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            raise SourceError(f"cannot read {path} as an image or a video")
        try:
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                yield path, index, frame
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise SourceError(f"{path} yielded no frames")


def json_record(source: str, frame: int, image_bgr: np.ndarray, detections: List[Dict]) -> str:
    """One JSON line; coordinates and confidences rounded to 4 decimals."""
    rounded = [{"cls": d["cls"], "name": d["name"], "conf": round(d["conf"], 4),
                "xyxy": [round(v, 4) for v in d["xyxy"]]} for d in detections]
    return json.dumps({"source": source, "frame": frame, "shape": list(image_bgr.shape[:2]),
                       "detections": rounded})

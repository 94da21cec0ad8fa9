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
import stat
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from jitvision.errors import InputError, ModelError, UsageError
from jitvision.extensions import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from jitvision.image_header import DEFAULT_MAX_PIXELS, image_header_size, max_image_file_bytes
from jitvision.model_file import is_checkpoint, load_model, model_run_error, probe_official, read_contract
from jitvision.yolov5.checkpoint import import_checkpoint
from jitvision.yolov5.letterbox import letterbox, to_input_tensor
from jitvision.yolov5.model import fuse_conv_bn
from jitvision.yolov5.nms import non_max_suppression, scale_boxes


@dataclass
class Detector:
    module: Callable[[torch.Tensor], Tuple[torch.Tensor, ...]]
    names: List[str]
    stride: int
    rect: bool  # rect letterbox (dynamic models) or square (fixed-size models)
    img_size: int  # default --img for rect models
    fixed_shape: Optional[Tuple[int, int]]  # (h, w) a fixed-size model takes
    dtype: torch.dtype  # the model's input dtype (its parameters')
    origin: str  # who exported the model or its weights: "jitvision" or "ultralytics"
    fp32_head: str = ""  # the submodule kept in float32 under bf16 (jitvision.precision); "": none recorded

    def input_shape(self, img_size: Optional[int]) -> Tuple[int, int]:
        """Target (h, w) of the letterbox for ``--img`` (None: the model's own size)."""
        if self.fixed_shape is not None:
            if img_size is not None and (img_size, img_size) != self.fixed_shape:
                raise ModelError(f"this model takes only {self.fixed_shape[0]}x{self.fixed_shape[1]} inputs; "
                                 f"--img {img_size} does not fit it")
            return self.fixed_shape
        img_size = self.img_size if img_size is None else img_size
        if img_size % self.stride:
            raise ModelError(f"--img {img_size} is not a multiple of the model stride {self.stride}")
        return img_size, img_size


def load_detector(path: str) -> Detector:
    """A TorchScript detector (its contract from the metadata) or an official ``.pt`` checkpoint, imported safely."""
    if is_checkpoint(path):
        imported = import_checkpoint(path)
        model = fuse_conv_bn(imported.model)
        return Detector(model, model.names, max(model.strides), True, 640, None, torch.float32, "ultralytics",
                        model.detect_name)
    loaded = load_model(path)
    params = list(loaded.module.parameters())
    dtype = params[0].dtype if params else torch.float32
    if dtype == torch.float16:  # an official FP16 export: the reference runs on the CPU, in FP32 (as the C++ app)
        print(f"jitvision: note: model file {path} holds FP16 weights; converted to FP32 for the CPU", file=sys.stderr)
        loaded.module.float()
        dtype = torch.float32
    contract = probe_official(loaded.module, read_contract(loaded).as_detector())
    return Detector(loaded.module, contract.names, contract.stride, contract.letterbox == "rect", contract.img_size,
                    None if contract.dynamic else contract.input_shape, dtype, contract.origin, contract.fp32_head)


def resolve_classes(given: Optional[Sequence[str]], names: Sequence[str]) -> Optional[List[int]]:
    """--classes items (indices or class names) -> class indices, as the C++ app's resolve_classes."""
    if given is None:
        return None
    classes = []
    for item in given:
        if item.isdigit():
            if int(item) >= len(names):
                raise UsageError(f"--classes {item}: the model has {len(names)} classes (0..{len(names) - 1})")
            classes.append(int(item))
        elif item in names:
            classes.append(list(names).index(item))
        else:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise UsageError(f"--classes {item}: the model has no class of that name (its classes: {shown})")
    return classes


def detect(detector: Detector, image_bgr: np.ndarray, img_size: Optional[int] = None, conf_thres: float = 0.25,
           iou_thres: float = 0.45, classes: Optional[Sequence[int]] = None, max_det: int = 1000,
           agnostic: bool = False) -> List[Dict]:
    """Boxes for one HWC BGR uint8 image, in its own pixels: dicts with cls, name, conf, xyxy."""
    padded, _ = letterbox(image_bgr, detector.input_shape(img_size), detector.stride, detector.rect)
    x = to_input_tensor(padded, detector.dtype)
    with torch.no_grad():
        try:
            out = detector.module(x)
        except RuntimeError as exc:  # the model's own code failed: a model error, not a bug of ours
            raise model_run_error(f"the model failed on an image of {image_bgr.shape[1]}x{image_bgr.shape[0]}",
                                  exc) from None
    rows = (out[0] if isinstance(out, (tuple, list)) else out)[0]  # contract: (rows,); a bare tensor also works
    found = non_max_suppression(rows, conf_thres, iou_thres, classes, max_det, agnostic)
    found[:, :4] = scale_boxes(found[:, :4], padded.shape[:2], image_bgr.shape[:2])
    return [{"cls": int(c), "name": detector.names[int(c)], "conf": float(s), "xyxy": [float(v) for v in box]}
            for *box, s, c in found.tolist()]


def _expand(source: str) -> List[str]:
    if os.path.isdir(source):
        found = sorted(os.path.join(source, n) for n in os.listdir(source)
                       if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)
        if not found:
            raise InputError(f"directory {source} holds no image or video files")
        return found
    if glob.has_magic(source):
        found = sorted(p for p in glob.glob(source, recursive=True) if os.path.isfile(p))
        if not found:
            raise InputError(f"no files match {source}")
        return found
    if not os.path.isfile(source):
        raise InputError(f"source {source} does not exist")
    return [source]


def read_image(path: str) -> Optional[np.ndarray]:
    """The file's image (BGR), or None when it does not decode. Read as bytes and decoded from memory: cv2.imread
    cannot take a name that is not UTF-8 (it crashes inside OpenCV). Opened without blocking and refused unless it
    is a regular file of a bounded size (a FIFO named f.jpg must not hang the run); not decoded when its header
    declares more than the C++ app's default --max-pixels (a decompression bomb)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(f"image {path} cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"image {path} is not a regular file")
        if info.st_size > max_image_file_bytes(DEFAULT_MAX_PIXELS):
            raise InputError(f"image {path} is {info.st_size} bytes, more than an image within --max-pixels "
                             f"{DEFAULT_MAX_PIXELS} can take ({max_image_file_bytes(DEFAULT_MAX_PIXELS)})")
        data = file.read(info.st_size)
    size = image_header_size(data)
    if size and size[0] * size[1] > DEFAULT_MAX_PIXELS:
        raise InputError(f"image {path} is {size[0]}x{size[1]} ({size[0] * size[1]} pixels), over the --max-pixels "
                         f"limit of {DEFAULT_MAX_PIXELS}; not decoded")
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None


class SourceFrame(NamedTuple):
    """One frame as the C++ app's JSON lines describe it (native/app/outputs.hpp)."""
    source: str          # the file it came from
    frame: int           # its number within its source
    image: np.ndarray    # BGR
    source_index: int    # its source's position in the source list
    timestamp: float     # capture time, seconds since the Unix epoch
    position_ms: Optional[float]  # video files: its position in the stream; None for images


def iter_source_frames(sources: Sequence[str], vid_stride: int = 1) -> Iterator[SourceFrame]:
    """Every frame of image files, directories, globs and video files, in order; of a video, only the frames whose
    index is a multiple of ``vid_stride``."""
    for source_index, source in enumerate(sources):
        for path in _expand(source):
            for frame in _path_frames(path, vid_stride):
                yield SourceFrame(path, frame[0], frame[1], source_index, time.time(), frame[2])


def iter_frames(sources: Sequence[str], vid_stride: int = 1) -> Iterator[Tuple[str, int, np.ndarray]]:
    """(path, frame index, BGR image) of iter_source_frames."""
    for f in iter_source_frames(sources, vid_stride):
        yield f.source, f.frame, f.image


def _path_frames(path: str, vid_stride: int) -> Iterator[Tuple[int, np.ndarray, Optional[float]]]:
    """(frame index, BGR image, position in ms or None) of one image or video file."""
    if os.path.splitext(path)[1].lower() not in VIDEO_EXTENSIONS:
        image = read_image(path)
        if image is not None:
            yield 0, image, None
            return
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"cannot read {escape_invalid_utf8(path)}: it is not an image, and OpenCV opens videos "
                         "by UTF-8 names only") from None
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise InputError(f"cannot read {path} as an image or a video")
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % vid_stride == 0:
                yield index, frame, max(0.0, capture.get(cv2.CAP_PROP_POS_MSEC))
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise InputError(f"{path} yielded no frames")


def escape_invalid_utf8(name: str) -> str:
    """A file name as the C++ app writes it to JSON (native/app/json_text.hpp): unchanged when it is valid UTF-8,
    else each byte that is not part of a valid UTF-8 sequence as the four characters \\xNN (lower-case hex)."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def json_record(source: str, frame: int, image_bgr: np.ndarray, detections: List[Dict], source_index: int = 0,
                timestamp: Optional[float] = None, position_ms: Optional[float] = None) -> str:
    """One JSON line with the C++ app's fields (native/app/outputs.hpp); coordinates and confidences rounded to 4
    decimals; ``source`` as escape_invalid_utf8 writes it; ``timestamp`` (None: now) in seconds since the epoch;
    ``position_ms`` only for video frames."""
    rounded = [{"cls": d["cls"], "name": d["name"], "conf": round(d["conf"], 4),
                "xyxy": [round(v, 4) for v in d["xyxy"]]} for d in detections]
    record = {"source": escape_invalid_utf8(source), "source_index": source_index, "frame": frame,
              "timestamp": time.time() if timestamp is None else timestamp, "shape": list(image_bgr.shape[:2]),
              "detections": rounded}
    if position_ms is not None:
        record["position_ms"] = position_ms
    return json.dumps(record)

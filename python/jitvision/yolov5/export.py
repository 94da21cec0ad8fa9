"""TorchScript export of a :class:`Yolov5` with its metadata, verified against the eager model before it is written.

The file holds two extra files (``torch.jit.load(..., _extra_files=...)`` reads them):

- ``config.txt``: the official contract, ``{"shape": [1, 3, H, W], "stride": 32, "names": {"0": ...}}``;
- ``jitvision.json``: ours (format ``jitvision/1``), see :func:`jitvision_metadata`.
"""
import copy
import io
import json
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from jitvision.yolov5.errors import ExportError
from jitvision.yolov5.model import Yolov5, fuse_conv_bn
from jitvision.yolov5.torchscript import quiet_jit_warnings

TOLERANCE = 1e-4  # max abs diff on decoded rows, TorchScript vs eager, float32
VERIFY_BATCH = 2


@dataclass
class ExportResult:
    path: str
    seconds: float
    max_abs_diff: float  # float32 TorchScript vs float32 eager, over every verification size
    sizes: List[Tuple[int, int]]
    half_max_abs_diff: Optional[float]  # --half only: fp16 TorchScript vs fp16 eager at the last (smallest) size
    metadata: Dict


def _round_to(x: float, stride: int) -> int:
    return max(stride, int(round(x / stride)) * stride)


def verification_sizes(img: int, stride: int, fixed: bool) -> List[Tuple[int, int]]:
    """(h, w) sizes checked at export: img x img, and for dynamic models a 3:5 and a 5:4 rectangle as well."""
    if fixed:
        return [(img, img)]
    return [(img, img), (_round_to(img * 3 / 5, stride), img), (_round_to(img / 2, stride), _round_to(img * 2 / 5, stride))]


def official_config(model: Yolov5, img: int) -> Dict:
    return {"shape": [1, 3, img, img], "stride": max(model.strides),
            "names": {str(i): name for i, name in enumerate(model.names)}}


def jitvision_metadata(model: Yolov5, img: int, fixed: bool, half: bool, source: Optional[Dict],
                       sizes: List[Tuple[int, int]], max_abs_diff: float) -> Dict:
    """Our metadata, read by the C++ app. ``verification`` records the float32 comparison."""
    return {
        "format": "jitvision/1", "task": "detect", "arch": "yolov5",
        "dynamic": not fixed, "letterbox": "square" if fixed else "rect",
        "img_size": img, "stride": max(model.strides), "strides": model.strides,
        "anchors": [[int(v) if float(v).is_integer() else v for v in level] for level in model.anchors_pixels()],
        "nc": model.nc, "names": model.names, "fused": True, "half": half,
        "source": source or {"file": None, "sha256": None},
        "torch_version": torch.__version__,
        "verification": {"sizes": [list(s) for s in sizes], "max_abs_diff": max_abs_diff},
    }


def _reload(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer, map_location="cpu")


def _max_diff(scripted, eager, x: torch.Tensor, rows_expected: int) -> float:
    out = scripted(x)
    if not (isinstance(out, tuple) and len(out) == 1):
        raise ExportError(f"TorchScript module returned {type(out).__name__}, expected a 1-tuple")
    got, want = out[0], eager(x)[0]
    if got.shape != (x.shape[0], rows_expected, want.shape[-1]) or got.shape != want.shape:
        raise ExportError(f"TorchScript output shape {tuple(got.shape)} at input {tuple(x.shape)}; eager gives "
                          f"{tuple(want.shape)}, expected {rows_expected} rows")
    diff = (got.double() - want.double()).abs().max().item()
    if diff != diff:
        raise ExportError(f"NaN in the outputs at input {tuple(x.shape)}")
    return diff


def _rows(model: Yolov5, h: int, w: int) -> int:
    return model.detect.na * sum((h // s) * (w // s) for s in model.strides)


def export_torchscript(model: Yolov5, out: str, img: int = 640, half: bool = False, fixed: bool = False,
                       source: Optional[Dict] = None) -> ExportResult:
    """Fuse, trace, verify and save ``model``; raise :class:`ExportError` (writing nothing) if verification fails."""
    stride = max(model.strides)
    if img % stride:
        raise ExportError(f"--img {img} is not a multiple of the model stride {stride}")
    start = time.perf_counter()
    eager = fuse_conv_bn(copy.deepcopy(model).float().eval())
    sizes = verification_sizes(img, stride, fixed)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad(), quiet_jit_warnings():
        scripted = _reload(torch.jit.trace(eager, torch.zeros(1, 3, img, img), check_trace=False))
        diffs = []
        for h, w in sizes:
            x = torch.rand(VERIFY_BATCH, 3, h, w, generator=generator)
            diffs.append(_max_diff(scripted, eager, x, _rows(model, h, w)))
        max_abs_diff = max(diffs)
        if max_abs_diff > TOLERANCE:
            worst = sizes[diffs.index(max_abs_diff)]
            raise ExportError(f"verification failed: TorchScript and eager outputs differ by {max_abs_diff:.3g} "
                              f"(> {TOLERANCE}) at input {worst[0]}x{worst[1]}; nothing written")
        half_diff = None
        if half:
            scripted = scripted.half()
            h, w = sizes[-1]  # fp16 convolutions are slow on the CPU: check the smallest size
            x = torch.rand(1, 3, h, w, generator=generator).half()
            half_diff = _max_diff(scripted, eager.half(), x, _rows(model, h, w))
            if half_diff > TOLERANCE:
                raise ExportError(f"verification failed: fp16 TorchScript and fp16 eager outputs differ by "
                                  f"{half_diff:.3g}; nothing written")
        metadata = jitvision_metadata(model, img, fixed, half, source, sizes, max_abs_diff)
        extra = {"config.txt": json.dumps(official_config(model, img)), "jitvision.json": json.dumps(metadata)}
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        partial = out + ".partial"
        torch.jit.save(scripted, partial, _extra_files=extra)
        os.replace(partial, out)
    return ExportResult(out, time.perf_counter() - start, max_abs_diff, sizes, half_diff, metadata)

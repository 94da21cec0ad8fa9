"""``--dtype bf16`` on the Python side, as the C++ app runs it (native/core/precision.hpp): a detector's body in
bfloat16 and its Detect head (convolutions and box decoding), named in jitvision.json's ``mixed_precision``, in
float32. The reference for measuring what bf16 costs in accuracy (``yolov5 val --dtype bf16``)."""
from pathlib import Path

import torch

from jitvision.errors import ModelError

REEXPORT_HINT = ("export it again with `python -m jitvision yolov5 import CHECKPOINT.pt --out FILE`, or re-export "
                 "this file with `python -m jitvision yolov5 import {path} --out FILE` if jitvision made it")


def cpu_has_bf16() -> bool:
    """Whether /proc/cpuinfo names avx512_bf16 or amx_bf16 (the C++ cpuinfo_has_bf16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def require_fp32_head(path: str, fp32_head: str) -> str:
    """``fp32_head``, or ModelError (as the C++ app's) when the file records none."""
    if not fp32_head:
        raise ModelError(f"model file {path} cannot run in bf16: its export does not keep the Detect head in float32 "
                         "(no \"mixed_precision\" in its metadata; an official export or one made before it existed): "
                         + REEXPORT_HINT.format(path=path))
    return fp32_head


def convert_except_head(module: torch.nn.Module, dtype: torch.dtype, fp32_head: str) -> None:
    """The floating-point parameters and buffers of ``module`` (eager or TorchScript) in ``dtype``, in place, except
    those under the submodule ``fp32_head``, which become float32 (the C++ convert_except_head)."""
    if fp32_head not in dict(module.named_modules()):
        raise ModelError(f"the model has no submodule {fp32_head!r} to keep in float32 (its metadata names it)")
    prefix = fp32_head + "."
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if tensor.is_floating_point():
                tensor.data = tensor.data.to(torch.float32 if name.startswith(prefix) else dtype)

"""TorchScript export of a :class:`Yolov5` with its metadata, verified against the eager model before it is written.

The file holds two extra files (``torch.jit.load(..., _extra_files=...)`` reads them):

- ``config.txt``: the official contract, ``{"shape": [1, 3, H, W], "stride": 32, "names": {"0": ...}}``;
- ``jitvision.json``: ours (format ``jitvision/1``), see :func:`jitvision_metadata`.

Three ways into TorchScript (``method``), all verified the same way and giving the same numbers:

- ``trace``: :func:`torch.jit.trace` of the whole model at one example input (the default);
- ``script``: :func:`torch.jit.script` of the whole model (the Python source compiled, control flow included);
- ``mixed``: the Detect head (per-level decoding on a grid sized at run time) scripted, the backbone and neck
  traced around it.
"""
import copy
import io
import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from jitvision.errors import OutputError
from jitvision.model_file import quiet_jit_warnings
from jitvision.yolov5.errors import ExportError
from jitvision.yolov5.model import Yolov5, fuse_conv_bn

# Max abs diff on decoded rows, TorchScript vs eager, float32. Measured: 0.0 for every method (the CPU runs the same
# ATen kernels in both); the margin only keeps a graph executor that fuses elementwise ops (and so may round
# differently in the last bit) from failing an export whose boxes are unchanged.
TOLERANCE = 1e-4
VERIFY_BATCH = 2  # every verification size at batch 2, and the last (smallest) one at batch 1 as well
EXPORT_METHODS = ("trace", "script", "mixed")  # the values of jitvision.json's "export" (as for MNIST)


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


def verification_sizes(img_size: int, stride: int, fixed: bool) -> List[Tuple[int, int]]:
    """(h, w) sizes checked at export: a square of img_size, and for dynamic models a 3:5 and a 5:4 rectangle too."""
    if fixed:
        return [(img_size, img_size)]
    return [(img_size, img_size), (_round_to(img_size * 3 / 5, stride), img_size),
            (_round_to(img_size / 2, stride), _round_to(img_size * 2 / 5, stride))]


def official_config(model: Yolov5, img_size: int) -> Dict:
    return {"shape": [1, 3, img_size, img_size], "stride": max(model.strides),
            "names": {str(i): name for i, name in enumerate(model.names)}}


def jitvision_metadata(model: Yolov5, img_size: int, fixed: bool, half: bool, source: Optional[Dict],
                       sizes: List[Tuple[int, int]], max_abs_diff: Optional[float], method: str = "trace") -> Dict:
    """Our metadata, read by the C++ app. ``verification`` records the float32 comparison."""
    return {
        "format": "jitvision/1", "task": "detect", "arch": "yolov5",
        "dynamic": not fixed, "letterbox": "square" if fixed else "rect",
        "img_size": img_size, "stride": max(model.strides), "strides": model.strides,
        "anchors": [[int(v) if float(v).is_integer() else v for v in level] for level in model.anchors_pixels()],
        "nc": model.nc, "names": model.names, "fused": True, "half": half, "export": method,
        # The submodule that stays float32 when the body runs in bf16 (the C++ app's --dtype bf16): its convolutions
        # cast their input to their weight's dtype (model.cast_like), so it takes the body's bf16 features.
        "mixed_precision": {"fp32_head": model.detect_name},
        "source": source or {"file": None, "sha256": None},
        "torch_version": torch.__version__,
        "verification": {"sizes": [list(s) for s in sizes], "batches": [VERIFY_BATCH, 1],
                         "max_abs_diff": max_abs_diff},
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


def to_torchscript(eager: Yolov5, method: str, img_size: int) -> torch.jit.ScriptModule:
    """``eager`` (fused, eval, float32) as TorchScript by ``method`` (see the module docstring)."""
    if method not in EXPORT_METHODS:
        raise ExportError(f"unknown export method {method!r} (choose from {', '.join(EXPORT_METHODS)})")
    if method == "script":
        return torch.jit.script(eager)
    if method == "mixed":
        eager = copy.deepcopy(eager)
        eager.model[-1] = torch.jit.script(eager.model[-1])  # the tracer records a call to the compiled head
    return torch.jit.trace(eager, torch.zeros(1, 3, img_size, img_size), check_trace=False)


def verify(scripted, eager: Yolov5, sizes: List[Tuple[int, int]], tolerance: Optional[float] = None,
           what: str = "TorchScript") -> float:
    """Max abs diff over random batches: every size at batch 2, the last size at batch 1 too; raise if further than
    ``tolerance`` (default: TOLERANCE)."""
    tolerance = TOLERANCE if tolerance is None else tolerance
    generator = torch.Generator().manual_seed(0)
    checks = [(VERIFY_BATCH, h, w) for h, w in sizes] + [(1, *sizes[-1])]
    diffs = [_max_diff(scripted, eager, torch.rand(b, 3, h, w, generator=generator), _rows(eager, h, w))
             for b, h, w in checks]
    worst = max(range(len(diffs)), key=diffs.__getitem__)
    if diffs[worst] > tolerance:
        b, h, w = checks[worst]
        raise ExportError(f"verification failed: {what} and eager outputs differ by {diffs[worst]:.3g} "
                          f"(> {tolerance}) at input {h}x{w}, batch {b}; nothing written")
    return diffs[worst]


def check_out_path(out: str) -> None:
    """Raise :class:`OutputError` unless ``out`` is a missing path or a regular file (symlinks followed): a
    directory, device node, FIFO or socket is never replaced."""
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        return  # missing, or a dangling link (replaced by the file itself)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise OutputError(f"cannot write {out}: it is {what}; give a file path")


def save_atomically(scripted: torch.jit.ScriptModule, out: str, extra: Dict[str, str]) -> None:
    """Save into a temporary file created exclusively (O_EXCL, unique name, never a link) next to ``out``, then
    rename it over ``out``: readers see the old file or the whole new one, and a failure leaves nothing behind."""
    check_out_path(out)
    folder = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.", suffix=".partial", dir=folder)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror} ({e.filename or folder})") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~umask)  # mkstemp's 0600 would make the model private
            torch.jit.save(scripted, f, _extra_files=extra)
        check_out_path(out)  # again: it may have changed during the export
        os.replace(partial, out)
    except BaseException as e:
        os.unlink(partial)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {out}: {e.strerror}") from None
        raise


def export_torchscript(model: Yolov5, out: str, img_size: int = 640, half: bool = False, fixed: bool = False,
                       source: Optional[Dict] = None, method: str = "trace") -> ExportResult:
    """Fuse, convert by ``method``, verify and save ``model``; raise :class:`ExportError` (writing nothing) if
    verification fails."""
    stride = max(model.strides)
    if img_size % stride:
        raise ExportError(f"--img {img_size} is not a multiple of the model stride {stride}")
    check_out_path(out)  # before the export's minutes, not only after
    start = time.perf_counter()
    eager = fuse_conv_bn(copy.deepcopy(model).float().eval())
    sizes = verification_sizes(img_size, stride, fixed)
    with torch.no_grad(), quiet_jit_warnings():
        scripted = _reload(to_torchscript(eager, method, img_size))
        max_abs_diff = verify(scripted, eager, sizes)
        half_diff = None
        if half:
            scripted = scripted.half()
            h, w = sizes[-1]  # fp16 convolutions are slow on the CPU: check the smallest size
            x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)).half()
            half_diff = _max_diff(scripted, eager.half(), x, _rows(model, h, w))
            if half_diff > TOLERANCE:
                raise ExportError(f"verification failed: fp16 TorchScript and fp16 eager outputs differ by "
                                  f"{half_diff:.3g}; nothing written")
        metadata = jitvision_metadata(model, img_size, fixed, half, source, sizes, max_abs_diff, method)
        metadata["verification"]["bf16"] = None if half else bf16_check(scripted, eager, sizes[-1])
        extra = {"config.txt": json.dumps(official_config(model, img_size)), "jitvision.json": json.dumps(metadata)}
        save_atomically(scripted, out, extra)
    return ExportResult(out, time.perf_counter() - start, max_abs_diff, sizes, half_diff, metadata)


def bf16_check(scripted, eager: Yolov5, size: Tuple[int, int]) -> Optional[Dict[str, float]]:
    """The file as the C++ app runs it with ``--dtype bf16`` (body bf16, Detect head fp32), on one random batch at
    ``size``: its largest difference from :class:`MixedPrecision` eager (a broken split shows here; raise beyond
    PT2_REDUCED_TOLERANCE) and from fp32 eager in box coordinates and confidence. None on a CPU without bf16."""
    from jitvision.precision import convert_except_head, cpu_has_bf16

    if not cpu_has_bf16():
        return None
    mixed = copy.deepcopy(scripted)
    convert_except_head(mixed, torch.bfloat16, eager.detect_name)
    net = MixedPrecision(eager, torch.bfloat16).eval()
    diffs = _reduced_precision_diffs(lambda x: mixed(x.to(torch.bfloat16)), net, eager, size, "cpu")
    if not diffs["vs_same_precision"] <= PT2_REDUCED_TOLERANCE["bf16"]:
        raise ExportError(f"verification failed: bf16 TorchScript and bf16 eager outputs differ by "
                          f"{diffs['vs_same_precision']:.3g}; nothing written")
    return diffs


# AOTInductor packages (see jitvision.pt2). Inductor fuses and reorders float arithmetic, so a fp32 package is not
# bit-identical to eager: measured up to 3e-4 on decoded rows (pixels and probabilities) of a random-init yolov5n.
PT2_TOLERANCE = 2e-3
# A reduced-precision package is compared with the same model run eagerly in that precision; the two round at
# different places, and near 300 px one bf16 step is 2 px, so decoded rows differ by a few pixels (measured 4.6 px
# on yolov5n at 320x256, bf16). The bound catches a broken compilation (wrong rows, NaN, garbage), not rounding:
# accuracy is what the largest box and confidence differences from fp32 eager show, printed and recorded.
PT2_REDUCED_TOLERANCE = {"bf16": 16.0, "fp16": 4.0}
PT2_MAX_BATCH = 64


class MixedPrecision(torch.nn.Module):
    """Backbone and neck in ``dtype``, the Detect head (its convs and box decoding) in float32; float32 in and out,
    so boxes are decoded in full precision whatever the body runs in."""

    def __init__(self, model: Yolov5, dtype: torch.dtype):
        super().__init__()
        self.net = copy.deepcopy(model)
        for layer in list(self.net.model)[:-1]:
            layer.to(dtype)
        self.dtype = dtype

    @property
    def detect(self):
        return self.net.detect

    @property
    def strides(self) -> List[int]:
        return self.net.strides

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        features = self.net.features(x.to(self.dtype))
        return (self.net.detect([f.float() for f in features]),)


def _pt2_program(net: torch.nn.Module, stride: int, img_size: int, device: str):
    """``net`` captured by torch.export with a dynamic batch (1 to PT2_MAX_BATCH) and dynamic height and width (any
    multiple of the stride up to the contract's largest input size)."""
    from torch.export import Dim

    from jitvision.model_file import MAX_INPUT_SIZE

    steps = MAX_INPUT_SIZE // stride
    spec = {0: Dim("batch", min=1, max=PT2_MAX_BATCH), 2: stride * Dim("h", min=1, max=steps),
            3: stride * Dim("w", min=1, max=steps)}
    example = torch.zeros(2, 3, img_size, img_size, device=device)
    try:
        return torch.export.export(net, (example,), dynamic_shapes=(spec,))
    except Exception as exc:  # torch.export raises many kinds (UserError, constraint violations, ...)
        raise ExportError(f"torch.export could not capture the model: {str(exc).splitlines()[0]}") from None


def _reduced_precision_diffs(package, net, eager: Yolov5, size: Tuple[int, int], device: str) -> Dict[str, float]:
    """Largest differences of a reduced-precision package: against ``net`` (same precision, eager) on all rows, and
    against fp32 eager in box coordinates (pixels) and confidence, on one random batch."""
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(2)).to(device)
    got, same, full = package(x)[0].float(), net(x)[0].float(), eager(x)[0].float()
    return {"vs_same_precision": (got - same).abs().max().item(),
            "box_px": (got[..., :4] - full[..., :4]).abs().max().item(),
            "confidence": (got[..., 4:5] * got[..., 5:] - full[..., 4:5] * full[..., 5:]).abs().max().item()}


def export_pt2(model: Yolov5, out: str, img_size: int = 640, dtype: str = "fp32", device: str = "cpu",
               source: Optional[Dict] = None) -> ExportResult:
    """Fuse, capture with torch.export (dynamic batch and size), compile with AOTInductor for ``device`` in ``dtype``
    (bf16/fp16: the body only, see :class:`MixedPrecision`), verify the package against eager and write it with our
    metadata inside; raise :class:`ExportError` (writing nothing) if verification fails."""
    from jitvision import pt2

    stride = max(model.strides)
    if img_size % stride:
        raise ExportError(f"--img {img_size} is not a multiple of the model stride {stride}")
    pt2.check_target(dtype, device)
    check_out_path(out)
    start = time.perf_counter()
    eager = fuse_conv_bn(copy.deepcopy(model).float().eval()).to(device)
    net = eager if dtype == "fp32" else MixedPrecision(eager, pt2.DTYPES[dtype]).eval()
    sizes = verification_sizes(img_size, stride, fixed=False)
    with torch.no_grad():
        program = _pt2_program(net, stride, img_size, device)
        # The package holds its metadata before it can be run: it records the bound the check below enforces
        metadata = jitvision_metadata(model, img_size, False, False, source, sizes, None, method="pt2")
        metadata.update({"dtype": dtype, "device": device, "max_batch": PT2_MAX_BATCH})
        metadata["verification"]["tolerance"] = PT2_TOLERANCE if dtype == "fp32" else PT2_REDUCED_TOLERANCE[dtype]
        verified = {}

        def check(package_path: str) -> None:
            package = pt2.load_package(package_path, device)
            if dtype == "fp32":
                verified["max_abs_diff"] = verify(package, eager, sizes, PT2_TOLERANCE, "AOTInductor package")
                return
            verified["max_abs_diff"] = verify(package, net, sizes[-1:], PT2_REDUCED_TOLERANCE[dtype],
                                              f"{dtype} AOTInductor package")
            verified["vs_fp32"] = _reduced_precision_diffs(package, net, eager, sizes[-1], device)

        pt2.compile_package(program, out, {"jitvision.json": json.dumps(metadata)}, check)
    metadata["verification"].update(verified)
    return ExportResult(out, time.perf_counter() - start, verified["max_abs_diff"], sizes, None, metadata)

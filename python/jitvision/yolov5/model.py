"""YOLOv5 (v6+ layers) built from the architecture description that official checkpoints carry.

Layer and parameter names follow the official state dicts (``model.{i}.cv1.conv.weight``, ``model.24.anchors``...),
so an official state dict loads strictly. The architecture dict has ``nc``, ``depth_multiple``, ``width_multiple``,
``anchors`` and ``backbone``/``head`` lists of ``[from, repeats, layer, args]``.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from jitvision.yolov5.errors import CheckpointError

BN_EPS = 1e-3  # YOLOv5 trains its BatchNorm layers with eps 1e-3 (checked against checkpoints on import)

ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
MAX_REPEATS = 64  # sanity bound for architectures read from files (x: 12)
SCALES = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}


def yolov5_architecture(scale: str = "n", nc: int = 80) -> Dict:
    """The published YOLOv5 v6 architecture at one of the scales n/s/m/l/x, for ``nc`` classes."""
    depth, width = SCALES[scale]
    return {
        "nc": nc, "depth_multiple": depth, "width_multiple": width, "anchors": [list(a) for a in ANCHORS],
        "backbone": [
            [-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
            [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C3", [256]], [-1, 1, "Conv", [512, 3, 2]],
            [-1, 9, "C3", [512]], [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C3", [1024]], [-1, 1, "SPPF", [1024, 5]],
        ],
        "head": [
            [-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 6], 1, "Concat", [1]],
            [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [256, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
            [[-1, 4], 1, "Concat", [1]], [-1, 3, "C3", [256, False]], [-1, 1, "Conv", [256, 3, 2]],
            [[-1, 14], 1, "Concat", [1]], [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [512, 3, 2]],
            [[-1, 10], 1, "Concat", [1]], [-1, 3, "C3", [1024, False]], [[17, 20, 23], 1, "Detect", ["nc", "anchors"]],
        ],
    }


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + SiLU; ``fuse`` folds the BatchNorm into the convolution."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: Optional[int] = None, g: int = 1,
                 act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=0.03)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block: two 1x1 branches, ``n`` bottlenecks on one of them, concatenated and mixed by a 1x1 conv."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(c1, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained k x k max-pools, all four stages concatenated."""

    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Concat(nn.Module):
    def __init__(self, dimension: int = 1):
        super().__init__()
        self.d = dimension

    def forward(self, xs: List[Tensor]) -> Tensor:
        return torch.cat(xs, self.d)


def cast_like(x: Tensor, weight: Tensor) -> Tensor:
    """``x`` in ``weight``'s dtype: a no-op in a float32 model; with the Detect head kept in float32 and the body in
    bf16 it brings the body's features up to float32, so boxes are decoded in full precision.

    ``type_as`` reads the dtype from ``weight`` at run time, also in a trace (``x.to(weight.dtype)`` or
    ``x.to(weight)`` would be recorded with the dtype and device as constants): the C++ app can convert the body
    alone (``--dtype bf16``) and the same file still runs whole in one dtype (``--half``).
    """
    return x.type_as(weight)


def decode_level(p: Tensor, anchors: Tensor, stride: float) -> Tensor:
    """Raw head output [B, na*no, ny, nx] -> decoded rows [B, na*ny*nx, no] (anchor, row, column order).

    ``anchors`` [na, 2] is in grid units. centre = (2 sigmoid(t) - 0.5 + cell) * stride,
    size = (2 sigmoid(t))^2 * anchor * stride (pixels), the rest sigmoid.
    Traceable as well as scriptable: sizes come from ``p.shape`` (recorded as shape ops when traced) and the cell
    indices are cumulative sums of ``ones_like`` (exact integers), not ``arange(..., device=, dtype=)``, whose
    device and dtype a trace would record as constants. So no size, device or dtype is baked into any export.
    """
    na = anchors.shape[0]
    bs, _, ny, nx = p.shape
    no = p.shape[1] // na
    y = p.view(bs, na, no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
    ones = torch.ones_like(y[0, 0, :, :, 0])  # [ny, nx], p's device and dtype
    gx = (ones.cumsum(1) - ones).view(1, 1, ny, nx)  # column index (`- 1` would trace as a CPU tensor constant)
    gy = (ones.cumsum(0) - ones).view(1, 1, ny, nx)
    aw = (anchors[:, 0] * stride).view(1, na, 1, 1)
    ah = (anchors[:, 1] * stride).view(1, na, 1, 1)
    cx = (y[..., 0] * 2 - 0.5 + gx) * stride
    cy = (y[..., 1] * 2 - 0.5 + gy) * stride
    w = (y[..., 2] * 2) ** 2 * aw
    h = (y[..., 3] * 2) ** 2 * ah
    rows = torch.cat((torch.stack((cx, cy, w, h), -1), y[..., 4:]), -1)
    return rows.reshape(bs, -1, no)


class Detect(nn.Module):
    """One 1x1 conv per level, then decoding; ``anchors`` is kept in grid units as in official state dicts."""

    strides: List[float]  # per level, set by the model once it knows the feature map sizes

    def __init__(self, nc: int, anchors: Union[int, Sequence[Sequence[float]]], ch: Sequence[int]):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(ch)
        if isinstance(anchors, int):  # anchor count only (auto-anchored): values come with the weights
            self.na = anchors
            self.register_buffer("anchors", torch.zeros(self.nl, self.na, 2))
        else:
            if len(anchors) != self.nl:
                raise CheckpointError(f"Detect has {self.nl} inputs but {len(anchors)} anchor levels")
            self.na = len(anchors[0]) // 2
            self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2))
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
        self.strides = []

    def forward(self, xs: List[Tensor]) -> Tensor:
        levels = [decode_level(conv(cast_like(xs[i], conv.weight)), self.anchors[i], self.strides[i])
                  for i, conv in enumerate(self.m)]
        return torch.cat(levels, 1)


def make_divisible(x: float, divisor: int = 8) -> int:
    return math.ceil(x / divisor) * divisor


_LAYERS = {"Conv": Conv, "C3": C3, "Bottleneck": Bottleneck, "SPPF": SPPF}


def _resolve_arg(arg, nc: int, anchors):
    names = {"nc": nc, "anchors": anchors, "None": None, "True": True, "False": False}
    return names[arg] if isinstance(arg, str) and arg in names else arg


def _check_arch(arch: Dict) -> None:
    for key in ("nc", "depth_multiple", "width_multiple", "anchors", "backbone", "head"):
        if key not in arch:
            raise CheckpointError(f"architecture description lacks '{key}'")
    if arch.get("activation"):
        raise CheckpointError(f"custom activation {arch['activation']!r} is not supported (only SiLU)")


def _repeats(i: int, n: int, depth_multiple: float) -> int:
    """Layer ``i``'s repeat count ``n`` scaled by the depth multiple (a single layer stays single)."""
    n = max(round(n * depth_multiple), 1) if n > 1 else n
    if not 1 <= n <= MAX_REPEATS:
        raise CheckpointError(f"layer {i} repeats {n} times; a YOLOv5 layer repeats 1 to {MAX_REPEATS} times")
    return n


def _module_args(name: str, c1: int, args: List, n: int, width_multiple: float, head_width: int):
    """Conv, C3, Bottleneck, SPPF: their arguments (output width scaled), repeat count and output channels."""
    c2 = args[0]
    if c2 != head_width:  # a layer producing the raw head width is not scaled
        c2 = make_divisible(c2 * width_multiple, 8)
    args = [c1, c2, *args[1:]]
    if name == "C3":  # C3 repeats its bottlenecks itself
        args.insert(2, n)
        n = 1
    return args, n, c2


def _layer_plan(i: int, src, name: str, args: List, n: int, ch: List[int], widths: Tuple[float, int], last: bool):
    """Layer ``i``'s constructor, its arguments, repeat count and output channels (``ch``: the earlier layers';
    ``widths``: the width multiple and the head width)."""
    if name in _LAYERS:
        return (_LAYERS[name], *_module_args(name, ch[src], args, n, *widths))
    if name == "Concat":
        return Concat, args, n, sum(ch[j] for j in src)
    if name in ("nn.Upsample", "Upsample"):
        return nn.Upsample, args, n, ch[src]
    if name == "Detect":
        if not last:
            raise CheckpointError("Detect must be the last layer of the architecture")
        return Detect, [*args, [ch[j] for j in src]], n, widths[1]
    raise CheckpointError(f"layer {i} is '{name}', which this YOLOv5 implementation does not support "
                          "(supported: Conv, C3, Bottleneck, SPPF, Concat, nn.Upsample, Detect)")


def _head_width(arch: Dict) -> int:
    """Channels of one Detect convolution: anchors per level x (classes + 5)."""
    anchors = arch["anchors"]
    na = anchors if isinstance(anchors, int) else len(anchors[0]) // 2
    return na * (arch["nc"] + 5)


def build_layers(arch: Dict, in_channels: int = 3) -> nn.Sequential:
    """Instantiate the layer list of ``arch`` with the published depth/width scaling rules."""
    _check_arch(arch)
    widths = (arch["width_multiple"], _head_width(arch))
    specs = list(arch["backbone"]) + list(arch["head"])
    ch = [in_channels]
    layers = []
    for i, (src, n, name, args) in enumerate(specs):
        args = [_resolve_arg(a, arch["nc"], arch["anchors"]) for a in args]
        n = _repeats(i, n, arch["depth_multiple"])
        make, args, n, c2 = _layer_plan(i, src, name, args, n, ch, widths, last=i == len(specs) - 1)
        layer = nn.Sequential(*(make(*args) for _ in range(n))) if n > 1 else make(*args)
        layer.i, layer.f = i, src
        layers.append(layer)
        if i == 0:
            ch = []
        ch.append(c2)
    if not layers or not isinstance(layers[-1], Detect):
        raise CheckpointError("the architecture has no Detect layer at its end")
    return nn.Sequential(*layers)


class Yolov5(nn.Module):
    """The detection model. ``forward`` returns ``(rows,)`` with rows [B, N, 5+nc] as in official exports.

    Traceable and scriptable as a whole (``torch.jit.script`` compiles ``forward``; the loop over the layers is
    unrolled and each layer's ``f`` is a constant there). See :mod:`jitvision.yolov5.export` for the methods.
    """

    __jit_unused_properties__ = ["detect", "strides"]  # Python-side helpers, not part of the compiled module

    def __init__(self, arch: Dict, in_channels: int = 3, names: Optional[Sequence[str]] = None):
        super().__init__()
        self.arch = arch
        self.model = build_layers(arch, in_channels)
        self.nc = int(arch["nc"])
        self.names = list(names) if names is not None else [f"class{i}" for i in range(self.nc)]
        if len(self.names) != self.nc:
            raise CheckpointError(f"{len(self.names)} class names for {self.nc} classes")
        self.save = sorted({j % layer.i for layer in self.model
                            for j in ([layer.f] if isinstance(layer.f, int) else layer.f) if j != -1})
        for layer in self.model:  # the routing as compile-time constants: torch.jit.script folds it away
            layer.keep = layer.i in self.save
            layer.__constants__ = [*getattr(type(layer), "__constants__", []), "i", "f", "keep"]
        detect = self.detect
        probe = 256  # strides follow from the feature map sizes of one forward at probe x probe
        training = self.training
        self.eval()
        with torch.no_grad():
            feats = self.features(torch.zeros(1, in_channels, probe, probe))
        self.train(training)
        detect.strides = [float(probe // f.shape[-2]) for f in feats]
        if not isinstance(arch["anchors"], int):
            detect.anchors /= torch.tensor(detect.strides).view(-1, 1, 1)

    @property
    def detect(self) -> Detect:
        return self.model[-1]

    @property
    def detect_name(self) -> str:
        """The Detect head's qualified submodule name (``model.24`` in the published architectures)."""
        return f"model.{len(self.model) - 1}"

    @property
    def strides(self) -> List[int]:
        return [int(s) for s in self.detect.strides]

    def anchors_pixels(self) -> List[List[float]]:
        """Anchors per level as flat [w0, h0, w1, h1, ...] lists in input pixels."""
        scaled = self.detect.anchors.float() * torch.tensor(self.detect.strides).view(-1, 1, 1)
        return [[round(v, 4) for v in level.flatten().tolist()] for level in scaled]

    def features(self, x: Tensor) -> List[Tensor]:
        """Run every layer but Detect; return Detect's inputs. A layer's ``f`` is -1 (the previous output), the
        index of a saved earlier output, or a list of those (Concat)."""
        saved: Dict[int, Tensor] = {}
        for layer in self.model:
            # every layer but the Detect head, which may be a scripted copy (export --method mixed); resolved at
            # compile time in script, so the head is not compiled into this method
            if not hasattr(layer, "anchors"):
                if isinstance(layer.f, int):
                    x = layer(x if layer.f == -1 else saved[layer.f])
                else:
                    x = layer([x if j == -1 else saved[j] for j in layer.f])
                if layer.keep:
                    saved[layer.i] = x
        return [x if j == -1 else saved[j] for j in self.model[-1].f]

    def forward(self, x: Tensor) -> Tuple[Tensor]:
        return (self.model[-1](self.features(x)),)


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every Conv's BatchNorm into its convolution (eval-mode inference only); in place."""
    for module in model.modules():
        if isinstance(module, Conv) and isinstance(module.bn, nn.BatchNorm2d):
            conv, bn = module.conv, module.bn
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, conv.groups, bias=True).to(conv.weight.device)
            with torch.no_grad():
                scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
                fused.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
                fused.bias.copy_(bn.bias.double() - bn.running_mean.double() * scale)
            fused.to(conv.weight.dtype)
            module.conv, module.bn = fused, nn.Identity()
    return model

"""Turn an official (or official-format, user-trained) YOLOv5 ``.pt`` checkpoint into our model, safely.

The checkpoint is read with :func:`safe_load` (nothing in it is imported or run); the architecture, class names
and weights come from the pickled model's recorded state, and the weights must match our model exactly.
"""
import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import nn

from jitvision.yolov5.errors import CheckpointError
from jitvision.yolov5.model import Yolov5, build_layers
from jitvision.yolov5.safe_pickle import Placeholder, safe_load

CHECKPOINT_FORMAT = "jitvision-yolov5-train/1"  # the "format" of our own training checkpoints (yolov5 train)

# Module settings that shapes alone do not pin down; compared with the checkpoint's recorded values.
_SETTINGS = {
    nn.Conv2d: ("kernel_size", "stride", "padding", "dilation", "groups"),
    nn.BatchNorm2d: ("eps",),
    nn.MaxPool2d: ("kernel_size", "stride", "padding", "dilation"),
    nn.Upsample: ("size", "scale_factor", "mode"),
}


@dataclass
class ImportedCheckpoint:
    model: Yolov5  # float32, eval mode, not fused
    file: str
    sha256: str


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _placeholder_modules(root: Placeholder) -> Dict[str, Placeholder]:
    found = {}
    stack = [("", root)]
    while stack:
        path, obj = stack.pop()
        found[path] = obj
        for name, child in obj.__dict__.get("_modules", {}).items():
            if child is not None:
                stack.append((f"{path}.{name}" if path else name, child))
    return found


def _placeholder_state_dict(modules: Dict[str, Placeholder]) -> Dict[str, torch.Tensor]:
    state = {}
    for path, obj in modules.items():
        attrs = obj.__dict__
        prefix = f"{path}." if path else ""
        skip = attrs.get("_non_persistent_buffers_set") or set()
        for name, tensor in list(attrs.get("_parameters", {}).items()) + list(attrs.get("_buffers", {}).items()):
            if tensor is not None and name not in skip:
                if not isinstance(tensor, torch.Tensor):
                    raise CheckpointError(f"checkpoint entry {prefix}{name} is not a tensor")
                state[prefix + name] = tensor
    return state


def _check_modules(model: nn.Module, theirs: Dict[str, Placeholder]) -> None:
    ours = dict(model.named_modules())
    for path, module in ours.items():
        if not path:
            continue
        other = theirs.get(path)
        if other is None:
            raise CheckpointError(f"checkpoint lacks module {path} ({type(module).__name__}) that the architecture "
                                  "defines")
        their_type = getattr(type(other), "qualname", type(other).__name__).rsplit(".", 1)[-1]
        if their_type != type(module).__name__:
            raise CheckpointError(f"module {path} is a {their_type} in the checkpoint but a {type(module).__name__} "
                                  "in the architecture")
        for kind, names in _SETTINGS.items():
            if isinstance(module, kind):
                for name in names:
                    mine, recorded = getattr(module, name), other.__dict__.get(name)
                    if mine != recorded:
                        raise CheckpointError(f"module {path}: {name} is {recorded!r} in the checkpoint but "
                                              f"{mine!r} in the architecture")
    extra = sorted(set(theirs) - set(ours))
    if extra:
        raise CheckpointError(f"checkpoint has module {extra[0]} ({theirs[extra[0]].qualname}) that the "
                              "architecture does not define")


def check_state(expected: Dict[str, torch.Tensor], state: Dict[str, torch.Tensor]) -> None:
    """Every key and shape of ``expected`` and ``state`` must match, else name the first mismatch."""
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(f"checkpoint lacks weight {key} {tuple(tensor.shape)}")
        if state[key].shape != tensor.shape:
            raise CheckpointError(f"weight {key} has shape {tuple(state[key].shape)} in the checkpoint, "
                                  f"the architecture expects {tuple(tensor.shape)}")
    for key in state:
        if key not in expected:
            raise CheckpointError(f"checkpoint has weight {key} that the architecture does not define")


def load_strict(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    check_state(expected, state)
    model.load_state_dict(OrderedDict((k, state[k].to(expected[k].dtype)) for k in expected), strict=True)


def _class_names(names, nc: int) -> List[str]:
    if isinstance(names, dict):
        names = [names.get(i, names.get(str(i))) for i in range(len(names))]
    if not isinstance(names, (list, tuple)) or len(names) != nc or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"the checkpoint's class names do not list {nc} strings")
    return list(names)


def _yolov5_model(obj, depth: int = 0) -> Optional[Placeholder]:
    """The pickled YOLOv5 model in ``obj``: the object itself when it records its architecture (``yaml``), or the
    model a hub wrapper holds under ``model`` (``AutoShape`` -> ``DetectMultiBackend`` -> ``Model``)."""
    if not isinstance(obj, Placeholder) or depth > 3:
        return None
    if isinstance(obj.__dict__.get("yaml"), dict):
        return obj
    inner = obj.__dict__.get("_modules", {}).get("model")
    return _yolov5_model(inner, depth + 1)


def _describe(obj) -> str:
    if isinstance(obj, Placeholder):
        return f"a pickled {type(obj).qualname}"
    if isinstance(obj, dict):
        keys = ", ".join(repr(k) for k in list(obj)[:6]) + (", ..." if len(obj) > 6 else "")
        return f"a dict (keys {keys})"
    return f"a {type(obj).__name__}"


def _pick_model(ckpt, path: str) -> Placeholder:
    """The model of an official checkpoint: from train.py (``ema`` when present, else ``model``), from export.py
    or the hub (``model``, possibly wrapped), or a pickled model object on its own."""
    candidates = [ckpt] if not isinstance(ckpt, dict) else [ckpt.get("ema"), ckpt.get("model")]
    for candidate in candidates:
        found = _yolov5_model(candidate)
        if found is not None:
            return found
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointError(f"{path} is a bare state dict without the architecture; it needs a full YOLOv5 "
                              "checkpoint (with 'model' or 'ema')")
    raise CheckpointError(f"{path} holds {_describe(ckpt)}, not a YOLOv5 model: import takes checkpoints written by "
                          "the official train.py, export.py or hub, or by `yolov5 train`")


def _training_checkpoint_model(ckpt: Dict, path: str) -> Yolov5:
    """The model of one of our own training checkpoints (``yolov5 train``'s last.pt/best.pt): its EMA weights."""
    try:
        model = Yolov5(ckpt["arch"], names=_class_names(ckpt["names"], int(ckpt["arch"]["nc"])))
        state = ckpt.get("ema") or ckpt["model"]
    except (AttributeError, IndexError, KeyError, OverflowError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"the training checkpoint {path} is malformed: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"the training checkpoint {path} holds no weights")
    load_strict(model, state)
    return model


def import_checkpoint(path: str) -> ImportedCheckpoint:
    """Build our model from the checkpoint at ``path`` (the ``ema`` weights if present, else ``model``): an official
    checkpoint of any kind (train.py, export.py, hub) or one of our own training checkpoints."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    ckpt = safe_load(path)
    if isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT:
        model = _training_checkpoint_model(ckpt, path)
        return ImportedCheckpoint(model.float().eval(), os.path.basename(path), sha256_of(path))
    source = _pick_model(ckpt, path)
    attrs = source.__dict__
    arch = attrs["yaml"]
    try:
        in_channels, names = int(arch.get("ch", 3)), _class_names(attrs.get("names"), int(arch["nc"]))
        modules = _placeholder_modules(source)
        state = _placeholder_state_dict(modules)
        with torch.device("meta"):  # shapes first: a corrupt architecture must not allocate gigabytes
            planned = build_layers(arch, in_channels)
        check_state({f"model.{k}": v for k, v in planned.state_dict().items()}, state)
        model = Yolov5(arch, in_channels, names=names)
        _check_modules(model, modules)
    except (AttributeError, IndexError, KeyError, OverflowError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"the model in {path} is malformed: {type(exc).__name__}: {exc}") from None
    load_strict(model, state)
    recorded: Optional[torch.Tensor] = attrs.get("stride")
    if isinstance(recorded, torch.Tensor) and recorded.float().tolist() != model.detect.strides:
        raise CheckpointError(f"checkpoint strides {recorded.tolist()} differ from the architecture's "
                              f"{model.detect.strides}")
    return ImportedCheckpoint(model.float().eval(), os.path.basename(path), sha256_of(path))

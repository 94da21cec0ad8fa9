"""Model files: what a file is, loading a TorchScript file with its metadata, and the contract it promises.

Mirrors the C++ core (``load_model``, ``read_contract``, ``ModelKind``): the contract is read once from the metadata
the file carries (never guessed from output shapes): our ``jitvision.json`` (``"task": "detect"`` or ``"digits"``)
or the official YOLOv5 export's ``config.txt``. Every command asks :func:`read_contract`; nobody decides the kind of
a model again.
"""
import contextlib
import dataclasses
import enum
import json
import math
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from jitvision.errors import ModelError
from jitvision.firewall import check_model
from jitvision.yolov5.letterbox import letterbox_geometry

METADATA_FILE = "jitvision.json"
OFFICIAL_CONFIG_FILE = "config.txt"


class ModelKind(str, enum.Enum):
    """What a model does; the values are the C++ ``to_string(ModelKind)`` strings."""

    DETECTOR = "detector"
    CLASSIFIER = "classifier"
    UNKNOWN = "unknown"


@contextlib.contextmanager
def quiet_jit_warnings():
    """Hide torch 2.14's deprecation warnings for torch.jit.* (expected: TorchScript is what we ship)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        yield


def archive_entries(path: str) -> List[str]:
    """The entry names of a model file (a zip archive, as both TorchScript and torch.save write them)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except FileNotFoundError:
        raise ModelError(f"model file {path} does not exist") from None
    except (zipfile.BadZipFile, IsADirectoryError):
        raise ModelError(f"{path} is not a TorchScript file (not a zip archive)") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror}") from None


def file_format(entries: List[str]) -> str:
    """``"torchscript"``, ``"checkpoint"`` (a torch.save pickle) or ``"other"``, from an archive's entry list."""
    if any(e.endswith("/constants.pkl") or "/code/" in e for e in entries):
        return "torchscript"
    if any(e.endswith("/data.pkl") for e in entries):
        return "checkpoint"
    return "other"


MODEL_FORMATS = ("torchscript", "pt2")  # what the C++ app runs (its to_string(ModelFormat) strings)
_ONNX_NEXT_KEYS = (0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42, 0x72)


def _signature_format(head: bytes) -> Optional[str]:
    """What a file that is not a zip archive is, from its first bytes (C++: refuse_known_signature)."""
    if len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 30 and head[2] in _ONNX_NEXT_KEYS:
        return ("an ONNX model, which jitvision does not run: give it the PyTorch checkpoint instead "
                "(`python -m jitvision yolov5 import FILE.pt --out model.torchscript`, or `--format pt2`)")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return ("a legacy (non-zip) torch.save() pickle, not TorchScript: re-save it with a current torch.save, "
                "then `python -m jitvision yolov5 import` it (YOLOv5 checkpoints) or export it in Python")
    if len(head) >= 10 and head[8:9] == b"{" and 1 < int.from_bytes(head[:8], "little") < (100 << 20):
        return ("a safetensors weights file (weights without the network), not TorchScript: load it into its "
                "model in Python and export that")
    known = ((head[:4] == b"GGUF", "a GGUF (llama.cpp) model, which jitvision does not run"),
             (head[4:8] == b"TFL3", "a TensorFlow Lite model, which jitvision does not run"),
             (head[:4] == b"\x89HDF", "an HDF5 (Keras) model, which jitvision does not run"),
             (head[:5] == b"<?xml", "an XML file (an OpenVINO IR model?), which jitvision does not run: give it "
                                    "the PyTorch checkpoint or TorchScript file"))
    return next((what for hit, what in known if hit), None)


def _weights_only_global(name: str) -> bool:
    return (name == "pickle:collections.OrderedDict" or name.startswith("pickle:torch._utils._rebuild_")
            or (name.startswith("pickle:torch.") and name.endswith("Storage")))


def _checkpoint_format(path: str) -> str:
    """Which kind of torch.save() archive, from the globals its pickle names (read, never run)."""
    from jitvision.firewall import used_names

    names = sorted(used_names(path))
    network = [n for n in names if n.startswith("pickle:models.yolo.")] or \
        [n for n in names if n.startswith("pickle:models.")]
    if network:
        return (f"a pickled YOLOv5 checkpoint (.pt/.pth, holding {network[-1][len('pickle:'):]}), not TorchScript: "
                f"convert it with `python -m jitvision yolov5 import {path} --out model.torchscript` (safe: runs "
                "nothing from the file)")
    if all(_weights_only_global(n) for n in names if n.startswith("pickle:")):
        return ("a torch.save() checkpoint holding a state_dict (weights without the network), not TorchScript: "
                "load it into its model in Python and export that (`python -m jitvision yolov5 import` takes "
                "YOLOv5 checkpoints, `python -m jitvision mnist train` writes the digit model)")
    return ("a torch.save() checkpoint (a pickled Python object), not TorchScript: export it first "
            "(python -m jitvision mnist train, or python -m jitvision yolov5 import)")


def model_format(path: str) -> str:
    """``"torchscript"`` or ``"pt2"`` (an AOTInductor package), told from the content as the C++ ``model_format()``
    does; ModelError naming a foreign format (ONNX, a torch.export program AOTInductor has not compiled, a pickled
    YOLOv5 checkpoint, a state_dict, another torch.save() pickle, safetensors, ...) and what to do with it. A file
    that is none of these is returned as TorchScript, for the loader to say what is wrong with it."""
    from jitvision.firewall import check_archive
    from jitvision.pt2 import is_pt2

    foreign = foreign_format(path)
    if foreign:
        raise ModelError(f"model file {path} is {foreign}")
    try:
        with open(path, "rb") as stream:
            zipped = stream.read(4) == b"PK\x03\x04"
    except OSError:
        return "torchscript"
    return "pt2" if zipped and is_pt2(check_archive(path)) else "torchscript"


def foreign_format(path: str) -> Optional[str]:
    """What a model file in a format jitvision does not run is, and what to do with it (the C++ app's same words,
    after "model file PATH is "); None for TorchScript, a compiled .pt2 package, and files that are none of the
    known formats (missing, truncated, random bytes: the loader names those)."""
    from jitvision.firewall import check_archive
    from jitvision.pt2 import is_pt2

    try:
        with open(path, "rb") as stream:
            head = stream.read(16)
    except OSError:
        return None
    if head[:4] != b"PK\x03\x04":
        return _signature_format(head)
    records = check_archive(path)
    if is_pt2(records):
        if any("/aotinductor/" in r for r in records):
            return None
        return ("a torch.export program (.pt2) without an AOTInductor-compiled model: compile it with "
                "torch._inductor.aoti_compile_and_package, or export with `python -m jitvision yolov5 import "
                "--format pt2`")
    if any("/code/" in r or r.endswith("constants.pkl") for r in records):
        return None
    if any(r.endswith("/data.pkl") or r == "data.pkl" for r in records):
        return _checkpoint_format(path)
    return "a zip archive, but neither TorchScript nor an AOTInductor package (.pt2)"


def is_checkpoint(path: str) -> bool:
    """True for a readable torch.save archive (a ``.pt`` checkpoint), False for anything else."""
    try:
        return file_format(archive_entries(path)) == "checkpoint"
    except ModelError:
        return False


def extra_file_names(entries: List[str]) -> List[str]:
    """Names of the extra files (``<archive>/extra/<name>``) in a TorchScript archive's entry list."""
    return sorted(e.split("/", 2)[2] for e in entries if e.count("/") >= 2 and e.split("/", 2)[1] == "extra")


def _parse_json(text: Optional[str]) -> Optional[Dict]:
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


@dataclass
class LoadedModel:
    """A TorchScript module in eval mode with every extra file it carries (decoded as text)."""

    path: str
    module: torch.jit.ScriptModule
    extras: Dict[str, str]
    entries: List[str]
    metadata: Optional[Dict] = field(default=None)  # jitvision.json, when present and a JSON object
    official_config: Optional[Dict] = field(default=None)  # config.txt, when present and a JSON object


def check_tensor_sizes(module: torch.nn.Module, path: str) -> None:
    """ModelError naming the first parameter or buffer whose view declares more elements than its storage holds: a
    stride-0 view lets a 2 KB file declare gigabytes, real as soon as the model moves to another device or dtype.
    Run right after torch.jit.load; the C++ check_tensor_sizes (native/core/tensor_bounds.hpp) is the same rule."""
    tensors = [("parameter", n, t) for n, t in module.named_parameters()]
    tensors += [("buffer", n, t) for n, t in module.named_buffers()]
    for kind, name, tensor in tensors:
        stored = tensor.untyped_storage().nbytes() // tensor.element_size() if tensor.element_size() else 0
        if tensor.numel() > stored:
            raise ModelError(f"model file {path}: {kind} {name} declares {tensor.numel()} elements (shape "
                             f"{list(tensor.shape)}, stride {list(tensor.stride())}) over a storage of {stored}; "
                             "refused before it is used")


def load_model(path: str, device: str = "cpu", trust_model: bool = False) -> LoadedModel:
    """Load a TorchScript file on ``device`` after the model firewall (:func:`jitvision.firewall.check_model`) has
    read it without running it; ModelError when it is missing, a checkpoint, not TorchScript, over a size limit or
    using what the allow-list lacks. ``trust_model`` (or JITVISION_TRUST_MODEL=1) skips the operator check."""
    if model_format(path) == "pt2":
        raise ModelError(f"model file {path} is an AOTInductor package (.pt2), which the Python side does not run: "
                         "run it with the C++ app (`jitvision detect --trust-model ...`), or give the TorchScript "
                         "file")
    entries = archive_entries(path)
    found = file_format(entries)
    if found != "torchscript":
        raise ModelError(f"{path} is a zip archive but not a TorchScript file")
    check_model(path, trust_model)  # nothing in the file runs before this
    extras = {name: "" for name in extra_file_names(entries)}
    try:
        with quiet_jit_warnings():
            module = torch.jit.load(path, map_location=device, _extra_files=extras)
    except RuntimeError as exc:
        raise ModelError(f"cannot load TorchScript file {path}: {str(exc).splitlines()[0]}") from None
    check_tensor_sizes(module, path)
    text = {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in extras.items()}
    return LoadedModel(path, module.eval(), text, entries, _parse_json(text.get(METADATA_FILE)),
                       _parse_json(text.get(OFFICIAL_CONFIG_FILE)))


@dataclass(frozen=True)
class DetectorContract:
    """A YOLOv5 detector: ours (dynamic shapes, jitvision.json) or an official export (fixed input, config.txt)."""

    origin: str  # who exported it: "jitvision" or "ultralytics"
    dynamic: bool  # any multiple of the stride (else fixed input_shape)
    letterbox: str  # "rect" or "square"
    stride: int
    img_size: int  # default --img
    input_shape: Tuple[int, int]  # (h, w): what a fixed model takes; (img_size, img_size) for dynamic ones
    names: List[str]
    # jitvision.json "mixed_precision": {"fp32_head": NAME}: the submodule kept in float32 when the rest runs in bf16
    # (jitvision.precision); "" when the file cannot run that way (official and older exports)
    fp32_head: str = ""


@dataclass(frozen=True)
class ClassifierContract:
    """An image classifier from ``mnist train``: input [N, C, H, W], (pixel * 255 / scale - mean) / std."""

    input_shape: List[int]
    scale: float
    mean: List[float]
    std: List[float]
    labels: List[str]


@dataclass(frozen=True)
class ModelContract:
    path: str
    kind: ModelKind
    task: str  # the file's own word: jitvision.json's "task", "detect" for an official export, "" without metadata
    detector: Optional[DetectorContract] = None  # set exactly when kind is DETECTOR
    classifier: Optional[ClassifierContract] = None  # set exactly when kind is CLASSIFIER

    def as_detector(self) -> DetectorContract:
        """The detector contract; ModelError saying what the file is instead when it is not a detector."""
        if self.detector is not None:
            return self.detector
        if not self.task:
            raise ModelError(f"model file {self.path} carries neither jitvision.json nor config.txt metadata, so its "
                             "input contract and class names are unknown: export it with "
                             "`python -m jitvision yolov5 import`")
        hint = " (a digit classifier: use `jitvision digits`)" if self.kind == ModelKind.CLASSIFIER else ""
        raise ModelError(f"model file {self.path} is a '{self.task}' model{hint}, not a YOLOv5 detector")

    def as_classifier(self) -> ClassifierContract:
        """The classifier contract; ModelError saying what the file is instead when it is not a classifier."""
        if self.classifier is not None:
            return self.classifier
        if not self.task or (self.detector is not None and self.detector.origin == "ultralytics"):
            raise ModelError(f"model file {self.path} carries no jitvision.json metadata, so it is not a digit "
                             "classifier exported by `python -m jitvision mnist train`")
        raise ModelError(f"model file {self.path} is a '{self.task}' model, not a digit classifier")


MAX_INPUT_SIZE = 8192  # detector metadata a sane export never exceeds (the C++ contract.cpp's same rules)
MAX_STRIDE = 256


def _names(path: str, names) -> List[str]:
    """Class names from a list or from the official ``{"0": "person", ...}`` mapping (keys: 1 to 9 ASCII digits)."""
    if not isinstance(names, dict):
        return [str(n) for n in names]
    for key in names:
        if not re.fullmatch(r"[0-9]{1,9}", key):
            raise ModelError(f"model file {path} has class name key '{key}', not a class index")
    if sorted(int(k) for k in names) != list(range(len(names))):
        raise ModelError(f"model file {path} has class name keys that are not 0..n-1")
    return [str(names[k]) for k in sorted(names, key=int)]


def _letterbox(path: str, name) -> str:
    if name not in ("rect", "square"):
        raise ModelError(f"model file {path} has letterbox '{name}', not rect or square")
    return name


def _check_detector(path: str, contract: DetectorContract) -> DetectorContract:
    if not contract.names:
        raise ModelError(f"model file {path} lists no class names")
    stride = contract.stride
    if stride <= 0 or stride > MAX_STRIDE or stride & (stride - 1):
        raise ModelError(f"model file {path} has stride {stride}, not a power of two from 1 to {MAX_STRIDE}")
    for size in (contract.img_size, *contract.input_shape):
        if not 0 < size <= MAX_INPUT_SIZE:
            raise ModelError(f"model file {path} has input size {size}, not from 1 to {MAX_INPUT_SIZE}")
    return contract


def _read_detector(model: LoadedModel) -> DetectorContract:
    path = model.path
    try:
        if model.metadata is not None:
            meta = model.metadata
            img = int(meta["img_size"])
            head = str(meta["mixed_precision"]["fp32_head"]) if "mixed_precision" in meta else ""
            contract = DetectorContract("jitvision", bool(meta["dynamic"]), _letterbox(path, meta["letterbox"]),
                                        int(meta["stride"]), img, (img, img), _names(path, meta["names"]), head)
        else:
            cfg = model.official_config
            shape = [int(v) for v in cfg["shape"]]
            if len(shape) != 4:
                raise ModelError(f"model file {path} has config.txt shape {cfg['shape']}, not [B, 3, H, W]")
            contract = DetectorContract("ultralytics", False, "square", int(cfg["stride"]), max(shape[2:]),
                                        (shape[2], shape[3]), _names(path, cfg["names"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model file {path} has incomplete detector metadata: {exc!r}") from None
    return _check_detector(path, contract)


def _read_classifier(model: LoadedModel) -> ClassifierContract:
    meta = model.metadata
    try:
        norm = meta["normalize"]
        contract = ClassifierContract([int(v) for v in meta["input"]["shape"]], float(norm["scale"]),
                                      [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]],
                                      [str(v) for v in meta["labels"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model file {model.path} has incomplete digit metadata: {exc!r}") from None
    if len(contract.input_shape) != 4:
        raise ModelError(f"model file {model.path} expects input {contract.input_shape}, not [N, C, H, W]")
    if not contract.labels:
        raise ModelError(f"model file {model.path} lists no class labels")
    _check_normalisation(model.path, contract)
    return contract


def model_run_error(what: str, exc: BaseException) -> ModelError:
    """A model's forward failed: a ModelError (exit 3) saying ``what`` failed, with the line of LibTorch's message that
    says why (the last ``SomethingError: ...`` line after the TorchScript traceback), as the C++ model_run_error
    (native/app/failure.hpp) writes it."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    reasons = [line for line in lines if re.match(r"^\w+Error: ", line)]
    reason = reasons[-1] if reasons else (lines[0] if lines else type(exc).__name__)
    return ModelError(f"{what}: {reason}")


def _check_normalisation(path: str, contract: ClassifierContract) -> None:
    """(pixel * 255 / scale - mean) / std must be finite: a std or scale of 0 turns every probability into NaN."""
    if not (math.isfinite(contract.scale) and contract.scale > 0):
        raise ModelError(f"model file {path} has normalize scale {contract.scale:g}, not a positive number")
    for std in contract.std:
        if not (math.isfinite(std) and std > 0):
            raise ModelError(f"model file {path} has normalize std {std:g}, not a positive number")
    for mean in contract.mean:
        if not math.isfinite(mean):
            raise ModelError(f"model file {path} has normalize mean {mean:g}, not a finite number")


def read_contract(model: LoadedModel) -> ModelContract:
    """What the file is and promises; ModelError when its metadata names a kind but is incomplete or malformed."""
    task = ""
    if model.metadata is not None:
        task = str(model.metadata.get("task", ""))
    elif model.official_config is not None:
        task = "detect"
    if task == "detect":
        return ModelContract(model.path, ModelKind.DETECTOR, task, detector=_read_detector(model))
    if task == "digits":
        return ModelContract(model.path, ModelKind.CLASSIFIER, task, classifier=_read_classifier(model))
    return ModelContract(model.path, ModelKind.UNKNOWN, task)


PROBE_STRIDES = (2, 3)  # the probe input in strides (h, w): non-square, 64x96 at stride 32 (C++: kProbeStrides*)


def _plausible_rows(rows: int, h: int, w: int, stride: int) -> bool:
    """Rows a YOLOv5 head gives at h x w: 1 to 9 anchors per cell of 3 or 4 levels (stride, stride/2, ...)."""
    for levels in (3, 4):
        cells = sum((h // (stride >> k)) * (w // (stride >> k)) for k in range(levels) if stride >> k)
        if cells and rows % cells == 0 and 1 <= rows // cells <= 9:
            return True
    return False


def probe_official(module, contract: DetectorContract) -> DetectorContract:
    """An official export's contract, dynamic with rect letterbox when the module (float32, on the CPU) runs at a
    non-square probe size and returns the rows a YOLOv5 head gives there: config.txt does not say whether it was
    exported with --dynamic, a fixed export's traced grid fails at another size. The C++ probe_official()."""
    if contract.origin != "ultralytics" or contract.dynamic:
        return contract
    h, w = (n * contract.stride for n in PROBE_STRIDES)
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, 3, h, w))
    except Exception:  # noqa: BLE001 - any failure of a fixed export at another size is the answer
        return contract
    rows = out[0] if isinstance(out, (tuple, list)) and out else out
    if not (isinstance(rows, torch.Tensor) and rows.dim() == 3 and rows.shape[0] == 1
            and rows.shape[2] == len(contract.names) + 5 and _plausible_rows(rows.shape[1], h, w, contract.stride)):
        return contract
    return dataclasses.replace(contract, dynamic=True, letterbox="rect")


def input_shape(contract: ModelContract, img_size: Optional[int] = None,
                frame_hw: Optional[Tuple[int, int]] = None) -> List[int]:
    """The forward input [N, C, H, W] both bench commands measure at, as the C++ bench sizes it.

    A classifier: its exported shape. A fixed detector: its own input. A dynamic detector: ``img_size`` rounded up
    to the stride (None or 0: the model's own size), square, or with ``frame_hw`` the letterboxed shape of a frame
    of that (h, w). ModelError for a model of unknown kind.
    """
    if contract.kind == ModelKind.CLASSIFIER:
        return list(contract.classifier.input_shape)
    detector = contract.as_detector()
    if not detector.dynamic:
        return [1, 3, *detector.input_shape]
    size = math.ceil(img_size / detector.stride) * detector.stride if img_size else detector.img_size
    if frame_hw is None:
        return [1, 3, size, size]
    geometry = letterbox_geometry(frame_hw[0], frame_hw[1], (size, size), detector.stride, detector.letterbox == "rect")
    return [1, 3, *geometry.shape]

"""``python -m jitvision triton export``: a Triton model repository entry for one of our TorchScript models.

Written for ``REPO/NAME``: ``config.pbtxt`` and ``1/model.pt`` (the TorchScript file, byte for byte), plus
``1/model.py`` (:mod:`jitvision.triton.python_model`) for the Python backend. Inputs and outputs are named as the
LibTorch backend requires (``INPUT__0``, ``OUTPUT__0``) for both backends, so a client does not care which one
serves. Their shapes come from the model's contract (:func:`jitvision.model_file.read_contract`) and from one
forward at batch 2 that checks the model really takes a batch before anything is written. The contract itself
travels as ``parameters`` (``jitvision.*`` keys) so a client reads names, stride and letterbox mode from the server's
``/v2/models/NAME/config``.
"""
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import torch

from jitvision.errors import ModelError, OutputError, UsageError
from jitvision.model_file import ModelContract, ModelKind, load_model, read_contract

INPUT_NAME = "INPUT__0"
OUTPUT_NAME = "OUTPUT__0"
VERSION = "1"
MODEL_FILE = "model.pt"
PYTHON_MODEL_FILE = "model.py"
PARAMETER_PREFIX = "jitvision."
BACKENDS = ("libtorch", "python")
DEVICES = ("cpu", "gpu")
QUEUE_DELAY_US = 2000  # how long Triton holds a request to batch it with others (dynamic_batching)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DTYPES = {torch.float32: "TYPE_FP32", torch.float16: "TYPE_FP16"}


@dataclass(frozen=True)
class ExportOptions:
    name: str
    backend: str = "python"
    max_batch: int = 8
    instances: int = 1
    device: str = "cpu"
    queue_delay_us: int = QUEUE_DELAY_US


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str
    dims: List[int]  # without the batch dimension; -1 where it varies


def check_options(options: ExportOptions) -> None:
    if not _NAME.fullmatch(options.name):
        raise UsageError(f"--name '{options.name}' is not a Triton model name (letters, digits, '_', '.', '-')")
    if options.backend not in BACKENDS:
        raise UsageError(f"--backend {options.backend}: one of {', '.join(BACKENDS)}")
    if options.device not in DEVICES:
        raise UsageError(f"--device {options.device}: one of {', '.join(DEVICES)}")
    for flag, value in (("--max-batch", options.max_batch), ("--instances", options.instances)):
        if not 1 <= value <= 1024:
            raise UsageError(f"{flag} {value}: from 1 to 1024")
    if not 0 <= options.queue_delay_us <= 1_000_000:
        raise UsageError(f"--queue-delay-us {options.queue_delay_us}: from 0 to 1000000")


def default_name(model_path: str) -> str:
    """The model file's stem with anything Triton does not take in a name replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(model_path).stem).lstrip("._-") or "model"


def _probe_shape(contract: ModelContract) -> List[int]:
    """[C, H, W] of the probe forward: a classifier's own shape, a fixed detector's input, a dynamic detector at
    two strides square (small, because fp16 convolutions are slow on the CPU)."""
    if contract.kind == ModelKind.CLASSIFIER:
        return list(contract.classifier.input_shape[1:])
    detector = contract.detector
    if detector.dynamic:
        return [3, 2 * detector.stride, 2 * detector.stride]
    return [3, *detector.input_shape]


def _single_output(value, path: str) -> torch.Tensor:
    """The one tensor a model returns (bare or as a 1-tuple, as YOLOv5 exports do); ModelError otherwise."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise ModelError(f"model file {path} returns {type(value).__name__}, not one tensor: Triton's "
                         f"{OUTPUT_NAME} cannot express it")
    return value


def tensor_specs(model, contract: ModelContract, batch: int) -> Tuple[TensorSpec, TensorSpec]:
    """Input and output of the config, checked by one forward at batch ``min(batch, 2)``; ModelError when the model
    does not take that batch, or returns something other than one float tensor [N, ...]."""
    path = contract.path
    params = list(model.module.parameters())
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32
    if dtype not in _DTYPES:
        raise ModelError(f"model file {path} has {dtype} parameters: Triton configs are written for fp32 or fp16")
    shape, probe_batch = _probe_shape(contract), min(batch, 2)
    try:
        with torch.no_grad():
            out = _single_output(model.module(torch.zeros([probe_batch, *shape], dtype=dtype)), path)
    except RuntimeError as exc:
        raise ModelError(f"model file {path} fails a forward at batch {probe_batch}, input {shape} "
                         f"({str(exc).splitlines()[0]}): export it with --max-batch 1") from None
    if out.dim() < 2 or out.shape[0] != probe_batch or out.dtype not in _DTYPES:
        raise ModelError(f"model file {path} returns {out.dtype} {list(out.shape)} for a batch of {probe_batch}, "
                         "not [N, ...] floats")
    in_dims, out_dims = shape, list(out.shape[1:])
    if contract.kind == ModelKind.DETECTOR and contract.detector.dynamic:
        in_dims, out_dims = [3, -1, -1], [-1, *out_dims[1:]]  # rows follow H and W
    return TensorSpec(INPUT_NAME, _DTYPES[dtype], in_dims), TensorSpec(OUTPUT_NAME, _DTYPES[out.dtype], out_dims)


def contract_parameters(contract: ModelContract) -> Dict[str, str]:
    """The contract as Triton ``parameters`` (string values; lists as JSON) under ``jitvision.*`` keys."""
    if contract.kind == ModelKind.DETECTOR:
        d = contract.detector
        values = {"task": "detect", "origin": d.origin, "dynamic": json.dumps(d.dynamic), "letterbox": d.letterbox,
                  "stride": str(d.stride), "img_size": str(d.img_size), "input_shape": json.dumps(list(d.input_shape)),
                  "names": json.dumps(d.names)}
    else:
        c = contract.classifier
        values = {"task": "digits", "input_shape": json.dumps(c.input_shape), "scale": repr(c.scale),
                  "mean": json.dumps(c.mean), "std": json.dumps(c.std), "labels": json.dumps(c.labels)}
    return {PARAMETER_PREFIX + k: v for k, v in values.items()}


def _quoted(text: str) -> str:
    """A protobuf text-format string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _tensor_block(kind: str, spec: TensorSpec) -> List[str]:
    return [f"{kind} [", "  {", f"    name: {_quoted(spec.name)}", f"    data_type: {spec.data_type}",
            f"    dims: [ {', '.join(str(d) for d in spec.dims)} ]", "  }", "]"]


def model_config(options: ExportOptions, specs: Tuple[TensorSpec, TensorSpec], parameters: Dict[str, str]) -> str:
    """config.pbtxt (protobuf text format of Triton's ModelConfig)."""
    header = ['platform: "pytorch_libtorch"', f'default_model_filename: "{MODEL_FILE}"'] \
        if options.backend == "libtorch" else ['backend: "python"']
    lines = [f"name: {_quoted(options.name)}", *header, f"max_batch_size: {options.max_batch}",
             *_tensor_block("input", specs[0]), *_tensor_block("output", specs[1]),
             "dynamic_batching {", f"  max_queue_delay_microseconds: {options.queue_delay_us}", "}",
             "instance_group [", "  {", f"    count: {options.instances}",
             f"    kind: {'KIND_GPU' if options.device == 'gpu' else 'KIND_CPU'}", "  }", "]"]
    for key, value in parameters.items():
        lines += ["parameters {", f"  key: {_quoted(key)}", f"  value: {{ string_value: {_quoted(value)} }}", "}"]
    return "\n".join(lines) + "\n"


def _write_entry(folder: Path, model_path: str, options: ExportOptions, config: str) -> None:
    version = folder / VERSION
    version.mkdir(parents=True)
    shutil.copyfile(model_path, version / MODEL_FILE)
    if options.backend == "python":
        shutil.copyfile(Path(__file__).with_name("python_model.py"), version / PYTHON_MODEL_FILE)
    (folder / "config.pbtxt").write_text(config)


def _place(staged: Path, target: Path, overwrite: bool) -> None:
    """Rename the finished entry into place; an existing one only with ``overwrite`` (moved aside, then removed)."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise OutputError(f"cannot write {target}: it exists and is not a directory")
    if target.exists():
        if not overwrite:
            raise OutputError(f"{target} exists: pass --overwrite to replace it")
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(staged, target)
        shutil.rmtree(old)
        return
    os.replace(staged, target)


def export_repository(model_path: str, repo: str, options: ExportOptions, overwrite: bool = False) -> Path:
    """Write ``repo/NAME`` for ``model_path`` (after the firewall, the contract and a probe forward: nothing is
    written when any of them refuses the model); the entry's path."""
    check_options(options)
    target = Path(repo) / options.name
    if target.exists() and not overwrite:
        raise OutputError(f"{target} exists: pass --overwrite to replace it")
    model = load_model(model_path)
    contract = read_contract(model)
    if contract.kind == ModelKind.UNKNOWN:
        contract.as_detector()  # raises the message that says what the file lacks
    config = model_config(options, tensor_specs(model, contract, options.max_batch), contract_parameters(contract))
    try:
        Path(repo).mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{options.name}.", suffix=".partial", dir=repo))
    except OSError as exc:
        raise OutputError(f"cannot write {repo}: {exc.strerror}") from None
    try:
        _write_entry(staged, model_path, options, config)
        _place(staged, target, overwrite)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return target

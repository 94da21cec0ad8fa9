"""``python -m jitvision info MODEL``: the contract of any TorchScript file, ours or official.

Traced or scripted? A traced op remembers the Python stack that ran it ("path(line): function"); a compiled
(scripted) op remembers its source line ('File "...", line N' with a caret). We count both kinds of source range
over the inlined forward graph. Files saved without debug information give "unknown".
"""
import json
import os
import re
import sys
import zipfile
from typing import Dict, List, Optional

import torch

from jitvision.yolov5.errors import Yolov5Error
from jitvision.yolov5.torchscript import archive_entries, load_torchscript

_TRACED_RANGE = re.compile(r"^\S[^\n]*\(\d+\): \w+")
_SCRIPTED_RANGE = re.compile(r'^\s*File "[^"]*", line \d+')


def build_kind(module: torch.jit.ScriptModule) -> str:
    traced = scripted = 0
    for node in module.inlined_graph.nodes():
        if node.kind().startswith("prim::"):
            continue
        source = node.sourceRange()
        if _TRACED_RANGE.match(source):
            traced += 1
        elif _SCRIPTED_RANGE.match(source):
            scripted += 1
    if traced and scripted:
        return "traced, with scripted parts"
    return "traced" if traced else "scripted" if scripted else "unknown (no debug information)"


def _describe(value) -> object:
    if isinstance(value, torch.Tensor):
        return {"shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", "")}
    if isinstance(value, (tuple, list)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    return type(value).__name__


def _example_shape(metadata: Optional[Dict], config: Optional[Dict]) -> Optional[List[int]]:
    if metadata:
        if isinstance(metadata.get("input"), dict) and "shape" in metadata["input"]:
            return list(metadata["input"]["shape"])
        if metadata.get("task") == "detect" and "img_size" in metadata:
            return [1, 3, metadata["img_size"], metadata["img_size"]]
    if config and "shape" in config:
        return list(config["shape"])
    return None


def _parse_json(text: Optional[str]) -> Optional[Dict]:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def model_info(path: str) -> Dict:
    """Everything ``info`` reports, as a JSON-ready dict."""
    entries = archive_entries(path)
    module, extras = load_torchscript(path)
    metadata = _parse_json(extras.get("jitvision.json"))
    config = _parse_json(extras.get("config.txt"))
    version = next((e for e in entries if e.count("/") == 1 and e.endswith("/version")), None)
    params = list(module.parameters())
    info = {
        "file": path, "bytes": os.path.getsize(path), "build": build_kind(module),
        "forward": str(module.forward.schema),
        "saved_with_torch": (metadata or {}).get("torch_version"),
        "file_format_version": None,
        "parameters": sum(p.numel() for p in params),
        "parameter_dtypes": sorted({str(p.dtype).replace("torch.", "") for p in params}),
        "buffers": sum(b.numel() for b in module.buffers()),
        "extra_files": {name: len(text) for name, text in extras.items()},
        "config": config, "metadata": metadata,
        "input": None, "outputs": None,
    }
    if version:
        with zipfile.ZipFile(path) as archive:
            info["file_format_version"] = archive.read(version).decode().strip()
    shape = _example_shape(metadata, config)
    if shape is not None:
        dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32
        info["input"] = {"shape": shape, "dtype": str(dtype).replace("torch.", ""),
                         "dynamic": bool(metadata.get("dynamic")) if metadata and "dynamic" in metadata else None}
        try:
            with torch.no_grad():
                info["outputs"] = _describe(module(torch.zeros(shape, dtype=dtype)))
        except RuntimeError as exc:
            info["outputs"] = f"forward at {shape} failed: {str(exc).splitlines()[0]}"
    return info


def _print_text(info: Dict) -> None:
    saved_with = (f"torch {info['saved_with_torch']}" if info["saved_with_torch"]
                  else f"torch version not recorded (TorchScript file format {info['file_format_version']})")
    print(f"file:        {info['file']} ({info['bytes'] / 1e6:.1f} MB)")
    print(f"build:       {info['build']}")
    print(f"saved with:  {saved_with}")
    print(f"forward:     {info['forward']}")
    if info["input"]:
        inp = info["input"]
        dynamic = {True: ", dynamic size and batch", False: ", fixed size", None: ""}[inp["dynamic"]]
        print(f"input:       {inp['shape']} {inp['dtype']}{dynamic}")
        print(f"outputs:     {json.dumps(info['outputs'])}")
    else:
        print("input:       unknown (no jitvision.json or config.txt shape)")
    print(f"parameters:  {info['parameters']:,} ({', '.join(info['parameter_dtypes']) or 'none'}); "
          f"buffers: {info['buffers']:,} values")
    print(f"extra files: {', '.join(f'{k} ({v} bytes)' for k, v in info['extra_files'].items()) or 'none'}")
    for name, doc in (("config.txt", info["config"]), ("jitvision.json", info["metadata"])):
        if doc is not None:
            shown = {k: (f"[{len(v)} names]" if k == "names" and len(v) > 8 else v) for k, v in doc.items()}
            print(f"{name}: {json.dumps(shown)}")


def run(args) -> int:
    try:
        info = model_info(args.model)
    except Yolov5Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info))
    else:
        _print_text(info)
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("info", help="print a TorchScript file's contract and metadata",
                                   description="Inputs, outputs (from one forward at the recorded input shape), "
                                               "metadata, parameter count, traced or scripted, for any "
                                               "TorchScript file.")
    parser.add_argument("model", help="TorchScript file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)

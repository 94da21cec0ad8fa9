"""``python -m jitvision info MODEL``: the contract of any TorchScript file, ours or official.

Traced or scripted? A traced op remembers the Python stack that ran it ("path(line): function"); a compiled
(scripted) op remembers its source line ('File "...", line N' with a caret). We count both kinds of source range
over the inlined forward graph. Files saved without debug information give "unknown".
"""
import json
import os
import re
import zipfile
from typing import Dict

import torch

from jitvision.firewall import add_trust_flag
from jitvision.model_file import ModelKind, input_shape, load_model, read_contract

_TRACED_RANGE = re.compile(r"^\S[^\n]*\(\d+\): \w+")
_SCRIPTED_RANGE = re.compile(r'^\s*File "[^"]+", line \d+')  # not 'File "", line 0': tracer-made conversions


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


def model_info(path: str) -> Dict:
    """Everything ``info`` reports, as a JSON-ready dict."""
    loaded = load_model(path)
    module, extras, metadata, config = loaded.module, loaded.extras, loaded.metadata, loaded.official_config
    version = next((e for e in loaded.entries if e.count("/") == 1 and e.endswith("/version")), None)
    contract = read_contract(loaded)
    params = list(module.parameters())
    info = {
        "file": path, "bytes": os.path.getsize(path), "kind": contract.kind.value, "build": build_kind(module),
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
    if contract.kind != ModelKind.UNKNOWN:
        shape = input_shape(contract)
        dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32
        info["input"] = {"shape": shape, "dtype": str(dtype).replace("torch.", ""),
                         "dynamic": contract.detector.dynamic if contract.detector else None}
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
    print(f"kind:        {info['kind']}")
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
    info = model_info(args.model)
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
    add_trust_flag(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)

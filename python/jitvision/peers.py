"""Peers for ``make bench``: ONNX Runtime and OpenVINO running the same model on the same input as jitvision.

The TorchScript file is exported to ONNX (the legacy TorchScript-based exporter, opset 17, the input shape fixed),
then each peer's forward is timed like ``jitvision bench`` times its own (first call, warm-up, median/p90/min over
N calls) and its rows are compared with the TorchScript file's as loaded (which the exporter verified against the
eager model at zero difference): ``max_abs_diff`` is in the rows' own units (pixels for boxes).

The peers live in a bench-only package directory, ``.venv-bench`` (``make bench-env``; ``$JITVISION_BENCH_ENV``
overrides the path), never in the project's own environment: ``make test`` and ``make demo`` do not need them.
Without it the command still succeeds and says why there are no peer figures (``skipped``).

    python -m jitvision.peers --model M.torchscript --shape 1x3x384x640 [--threads N] [--warmup 5] [--iters 30] [--json]
"""
import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from jitvision.bench import parse_shape, short_reason, stats
from jitvision.errors import UsageError
from jitvision.model_file import load_model, quiet_jit_warnings
from jitvision.precision import cpu_has_bf16

REPO = Path(__file__).resolve().parents[2]
ONNX_OPSET = 17
PEERS = ("onnxruntime fp32", "openvino f32", "openvino bf16")


def bench_env_path() -> Path:
    return Path(os.environ.get("JITVISION_BENCH_ENV") or REPO / ".venv-bench")


def import_peers():
    """(onnxruntime, openvino) from the bench environment; a one-line reason (str) when they cannot be imported."""
    env = bench_env_path()
    if not env.is_dir():
        return f"no bench environment at {env} (make bench-env installs ONNX Runtime and OpenVINO there)"
    if str(env) not in sys.path:
        sys.path.append(str(env))  # after the project's own packages: their numpy and torch win
    try:
        import onnxruntime
        import openvino
    except ImportError as exc:
        return f"the bench environment {env} cannot be imported from ({short_reason(exc)}): run make bench-env"
    return onnxruntime, openvino


def rows_of(out) -> np.ndarray:
    """The decoded rows of a detector (the first output) or a classifier's logits, as float32 numpy."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out.detach().float().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, dtype=np.float32)


def export_onnx(module, x: torch.Tensor, out: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(out), opset_version=ONNX_OPSET, dynamo=False, input_names=["images"],
                          output_names=["rows"])


def time_calls(call: Callable[[], object], warmup: int, iters: int) -> Dict:
    def once() -> float:
        start = time.perf_counter()
        call()
        return (time.perf_counter() - start) * 1000.0

    first = once()
    warm = [once() for _ in range(warmup)]
    return {"first_call_ms": first, "warmup_ms": warm, "forward": stats([once() for _ in range(iters)])}


def onnxruntime_runner(ort, onnx_path: Path, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def openvino_runner(ov, onnx_path: Path, threads: int, precision: str):
    # OpenVINO picks bf16 by itself on CPUs that have it: ask for the precision each row names.
    compiled = ov.Core().compile_model(str(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                               "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()

    def run(x):
        request.infer({0: x})
        return request.get_output_tensor(0).data

    return run


def measure_peer(name: str, make_runner: Callable[[], Callable], x: np.ndarray, reference: np.ndarray,
                 warmup: int, iters: int, version: str) -> Dict:
    entry = {"version": version, "skipped": None}
    try:
        start = time.perf_counter()
        runner = make_runner()
        entry["load_ms"] = (time.perf_counter() - start) * 1000.0
        rows = rows_of(runner(x)).reshape(reference.shape)
        entry["max_abs_diff"] = float(np.abs(rows - reference).max())
        entry.update(time_calls(lambda: runner(x), warmup, iters))
    except Exception as exc:  # noqa: BLE001 - a peer that fails is a skipped row, never the end of the report
        entry = {"version": version, "skipped": f"{name} failed: {short_reason(exc)}", "forward": stats([])}
    return entry


def run_peers(model: str, shape: List[int], threads: int, warmup: int, iters: int) -> Dict:
    out: Dict = {"model": model, "shape": shape, "threads": threads, "onnx_opset": ONNX_OPSET,
                 "reference": "the TorchScript file as loaded", "peers": {}, "skipped": None}
    peers = import_peers()
    if isinstance(peers, str):
        out["skipped"] = peers
        return out
    ort, ov = peers
    torch.set_num_threads(threads)
    with quiet_jit_warnings():
        module = load_model(model).module.eval()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = rows_of(module(x))
    x_np = x.numpy()
    with tempfile.TemporaryDirectory(prefix="jitvision-peers-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        start = time.perf_counter()
        export_onnx(module, x, onnx_path)
        out["onnx_export_s"] = time.perf_counter() - start
        makers = {
            "onnxruntime fp32": (lambda: onnxruntime_runner(ort, onnx_path, threads), ort.__version__),
            "openvino f32": (lambda: openvino_runner(ov, onnx_path, threads, "f32"), ov.__version__),
            "openvino bf16": (lambda: openvino_runner(ov, onnx_path, threads, "bf16"), ov.__version__),
        }
        for name in PEERS:
            make, version = makers[name]
            if name.endswith("bf16") and not cpu_has_bf16():
                out["peers"][name] = {"version": version, "skipped": "this CPU has no avx512_bf16/amx_bf16",
                                      "forward": stats([])}
                continue
            out["peers"][name] = measure_peer(name, make, x_np, reference, warmup, iters, version)
    return out


def print_text(out: Dict) -> None:
    if out["skipped"]:
        print(f"peers: none measured: {out['skipped']}")
        return
    print(f"peers on {out['model']}, input {'x'.join(map(str, out['shape']))}, {out['threads']} threads "
          f"(max diff against {out['reference']})")
    for name, entry in out["peers"].items():
        if entry["skipped"]:
            print(f"  {name:18s} skipped: {entry['skipped']}")
        else:
            f = entry["forward"]
            print(f"  {name:18s} median {f['median_ms']:.2f} ms, p90 {f['p90_ms']:.2f} ms, min {f['min_ms']:.2f} ms; "
                  f"max diff {entry['max_abs_diff']:.2g} ({entry['version']})")


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jitvision.peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="TorchScript file (detector or digit classifier)")
    p.add_argument("--shape", required=True, help="input shape BxCxHxW, e.g. 1x3x384x640")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls after the first (default 5)")
    p.add_argument("--iters", type=int, default=30, help="timed calls (default 30)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.threads < 1 or args.warmup < 0 or args.iters < 1:
        raise UsageError("--threads and --iters must be at least 1, --warmup at least 0")
    out = run_peers(args.model, parse_shape(args.shape), args.threads, args.warmup, args.iters)
    if args.json:
        print(json.dumps(out))
    else:
        print_text(out)
    return 0


if __name__ == "__main__":
    from jitvision.__main__ import run

    sys.exit(run(lambda: main()))

"""``python -m jitvision bench``: the Python side of ``jitvision bench``.

Forward-only latency (first call, each warm-up call, then median/p90/min over N calls) of one model as eager,
traced and scripted modules, each as is, frozen (``torch.jit.freeze``) and frozen + ``optimize_for_inference``;
with ``--video``, the reference detector's end-to-end rate on that video (wall time, first result, steady FPS,
per-stage median/p90). Field names follow the C++ command's JSON so the two can be set side by side.

Without ``--isolate`` every variant runs in this process, so later variants profit from the lazy initialisation
(thread pool, oneDNN primitives, first-touch memory) the earlier ones paid for; ``--isolate`` runs each in a fresh
child process, whose first call is then comparable with a fresh ``jitvision bench``.
"""
import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from jitvision.yolov5.errors import Yolov5Error
from jitvision.yolov5.torchscript import load_torchscript, quiet_jit_warnings

FORMS = ("eager", "traced", "scripted")
STEPS = ("", "+freeze", "+freeze+ofi")
VARIANTS = tuple(f + s for f in FORMS for s in (STEPS if f != "eager" else ("",)))
# How the TorchScript graph executor is set before anything is loaded (the first-call study compares these).
EXECUTORS = ("profiling", "legacy", "unoptimized")


class BenchError(Exception):
    """A bench run that cannot be done as asked (bad shape, model without a known input, ...)."""


def stats(samples: Sequence[float]) -> Dict:
    """Median, nearest-rank p90 and min, as the C++ TimingStats computes them."""
    if not samples:
        return {"median_ms": None, "p90_ms": None, "min_ms": None, "n": 0}
    s = sorted(samples)
    rank = min(max(math.ceil(0.9 * len(s)), 1), len(s))
    return {"median_ms": float(np.median(s)), "p90_ms": s[rank - 1], "min_ms": s[0], "n": len(s)}


def parse_shape(text: str) -> List[int]:
    try:
        dims = [int(v) for v in text.split("x")]
    except ValueError:
        dims = []
    if len(dims) != 4 or min(dims) <= 0:
        raise BenchError(f"--shape must look like 1x3x384x640 (BxCxHxW), got '{text}'")
    return dims


def set_executor(name: str) -> None:
    if name == "legacy":
        torch._C._jit_set_profiling_executor(False)
    elif name == "unoptimized":
        torch._C._set_graph_executor_optimize(False)


def pick_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise BenchError("--device cuda: no usable CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def model_task(extras: Dict[str, str]) -> Tuple[str, Dict]:
    if extras.get("jitvision.json"):
        meta = json.loads(extras["jitvision.json"])
        return meta.get("task", ""), meta
    if extras.get("config.txt"):
        return "detect", {}
    return "", {}


def input_shape(args, task: str, meta: Dict, extras: Dict[str, str]) -> List[int]:
    """The forward shape: --shape, else the model's; with --video the letterboxed shape of its first frame."""
    if args.shape:
        return parse_shape(args.shape)
    if task == "digits":
        return [1, 1, 28, 28]
    if task != "detect":
        raise BenchError(f"cannot tell the input shape of {args.model}: pass --shape BxCxHxW")
    if not meta:  # official export: fixed size from config.txt
        return list(json.loads(extras["config.txt"])["shape"])
    stride = int(meta["stride"])
    size = -(-args.img // stride) * stride if args.img else int(meta["img_size"])
    if not meta["dynamic"]:
        size = int(meta["img_size"])
    if not args.video:
        return [1, 3, size, size]
    from jitvision.yolov5.letterbox import letterbox_geometry

    capture = cv2.VideoCapture(args.video)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise BenchError(f"video {args.video} cannot be read")
    geometry = letterbox_geometry(frame.shape[0], frame.shape[1], (size, size), stride, meta["letterbox"] == "rect")
    return [1, 3, *geometry.shape]


def _detector_weights(args, meta: Dict) -> Tuple[Optional[str], str]:
    """--weights, else the checkpoint the file was exported from when it lies in $JITVISION_DATA_DIR/weights."""
    if args.weights:
        return args.weights, ""
    from jitvision.yolov5.checkpoint import sha256_of

    source = meta.get("source") or {}
    data_dir = os.environ.get("JITVISION_DATA_DIR")
    if source.get("file") and data_dir:
        candidate = os.path.join(data_dir, "weights", source["file"])
        if os.path.isfile(candidate) and sha256_of(candidate) == source.get("sha256"):
            return candidate, ""
    return None, "no checkpoint for this export: pass --weights (the .pt it was made from)"


@dataclass
class Setup:
    """What every variant of one run shares."""
    args: argparse.Namespace
    task: str
    meta: Dict
    file_form: str  # "traced" or "scripted": how the file was made
    shape: List[int]
    device: torch.device
    dtype: torch.dtype


def eager_model(setup: Setup) -> Tuple[Optional[torch.nn.Module], str]:
    """The eager model with the file's weights, or None and why not."""
    if setup.task == "digits":
        from jitvision.mnist.model import DigitNet

        model = DigitNet()
        try:
            model.load_state_dict(load_torchscript(setup.args.model)[0].state_dict())
        except RuntimeError:
            return None, "the file's weights do not fit DigitNet's default layout"
        return model.eval(), ""
    if setup.task == "detect":
        weights, why = _detector_weights(setup.args, setup.meta)
        if weights is None:
            return None, why
        from jitvision.yolov5.checkpoint import import_checkpoint
        from jitvision.yolov5.model import fuse_conv_bn
        from jitvision.yolov5.train import is_training_checkpoint, load_training_checkpoint, model_from_checkpoint

        model = (model_from_checkpoint(load_training_checkpoint(weights)) if is_training_checkpoint(weights)
                 else import_checkpoint(weights).model)
        return fuse_conv_bn(model.float().eval()), ""  # fused, as the exporter traces it
    return None, "eager needs a jitvision model (digits or detect)"


def file_form(module) -> str:
    from jitvision.info import build_kind

    return "scripted" if build_kind(module) == "scripted" else "traced"


def build_variant(name: str, setup: Setup):
    """(callable, how it was made) for one variant; raises BenchError when it cannot be built."""
    form, _, steps = name.partition("+")
    if form == setup.file_form:
        module = load_torchscript(setup.args.model)[0].to(setup.device, setup.dtype)
        source = f"{form}, as loaded from the file"
    else:
        eager, why = eager_model(setup)
        if eager is None:
            raise BenchError(why)
        eager = eager.to(setup.device, setup.dtype)
        if form == "eager":
            return eager, "eager model with the file's weights"
        with quiet_jit_warnings(), torch.no_grad():
            try:
                module = (torch.jit.script(eager) if form == "scripted"
                          else torch.jit.trace(eager, torch.zeros(setup.shape, device=setup.device,
                                                                  dtype=setup.dtype)))
            except Exception as exc:  # noqa: BLE001 - scripting rejects many Python constructs
                verb = "script" if form == "scripted" else "trace"
                raise BenchError(f"torch.jit.{verb} fails: {str(exc).splitlines()[0].rstrip(':')}") from None
        source = f"{form} from the eager model"
    with quiet_jit_warnings():
        if steps:
            module = torch.jit.freeze(module.eval())
        if steps == "freeze+ofi":
            module = torch.jit.optimize_for_inference(module)
    return module, source


def time_forward(module, x: torch.Tensor, warmup: int, iters: int, device: torch.device) -> Dict:
    def once() -> float:
        start = time.perf_counter()
        module(x)
        synchronize(device)
        return (time.perf_counter() - start) * 1000

    with torch.inference_mode():
        first = once()
        warm = [once() for _ in range(warmup)]
        timed = [once() for _ in range(iters)]
    return {"first_call_ms": first, "warmup_ms": warm, "forward": stats(timed)}


def measure_variant(name: str, setup: Setup) -> Dict:
    entry = {"source": None, "load_ms": None, "first_call_ms": None, "warmup_ms": [], "forward": stats([]),
             "skipped": None}
    start = time.perf_counter()
    try:
        module, entry["source"] = build_variant(name, setup)
    except (BenchError, Yolov5Error) as exc:
        entry["skipped"] = str(exc)
        return entry
    entry["load_ms"] = (time.perf_counter() - start) * 1000
    x = torch.rand(setup.shape, generator=torch.Generator().manual_seed(0)).to(setup.device, setup.dtype)
    try:
        entry.update(time_forward(module, x, setup.args.warmup, setup.args.iters, setup.device))
    except RuntimeError as exc:  # e.g. optimize_for_inference's graph with graph optimisation off
        entry.update(load_ms=None, skipped=f"forward fails: {str(exc).splitlines()[0]}")
    return entry


def reference_on_video(model: str, video: str, img: Optional[int]) -> Dict:
    """The reference detector (python -m jitvision yolov5 detect --json) over the video, in this process."""
    from jitvision.yolov5.detect import detect, iter_frames, json_record, load_detector

    start = time.perf_counter()
    detector = load_detector(model)
    load_ms = (time.perf_counter() - start) * 1000
    capture_ms, detect_ms, output_ms = [], [], []
    first = end = None
    frames = iter_frames([video])
    with open(os.devnull, "w") as sink:
        while True:
            t0 = time.perf_counter()
            item = next(frames, None)
            if item is None:
                break
            t1 = time.perf_counter()
            found = detect(detector, item[2], img)
            t2 = time.perf_counter()
            print(json_record(*item, found), file=sink, flush=True)
            end = time.perf_counter()
            first = end if first is None else first
            capture_ms.append((t1 - t0) * 1000)
            detect_ms.append((t2 - t1) * 1000)
            output_ms.append((end - t2) * 1000)
    n = len(detect_ms)
    fps = (n - 1) / (end - first) if n > 1 and end > first else 0.0
    return {"file": video, "frames": n, "wall_s": time.perf_counter() - start, "load_ms": load_ms,
            "first_result_s": (first - start) if first else None, "fps": fps,
            "per_frame_ms": 1000 / fps if fps else None,
            "stages": {"capture": stats(capture_ms), "detect": stats(detect_ms), "output": stats(output_ms)}}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def versions() -> Dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "opencv": cv2.__version__,
            "numpy": np.__version__}


def _child(args, shape: List[int], variants: str, video: bool) -> Dict:
    """The same measurement in a fresh process (``--isolate``)."""
    cmd = [sys.executable, "-m", "jitvision", "bench", "--model", args.model, "--device", args.device,
           "--threads", str(args.threads), "--warmup", str(args.warmup), "--iters", str(args.iters),
           "--shape", "x".join(map(str, shape)), "--jit-executor", args.jit_executor, "--variants", variants,
           "--json"]
    cmd += ["--half"] * args.half + ["--weights", args.weights] * bool(args.weights)
    cmd += ["--img", str(args.img)] * bool(args.img) + ["--video", args.video] * video
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"child bench failed ({' '.join(cmd)}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def run_bench(args) -> Dict:
    set_executor(args.jit_executor)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    half = args.half and device.type == "cuda"
    if args.half and not half:
        print("warning: --half needs CUDA; measuring FP32 on the CPU", file=sys.stderr)
    dtype = torch.float16 if half else torch.float32
    names = [v for v in args.variants.split(",") if v]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise BenchError(f"unknown variant(s) {', '.join(sorted(unknown))}; known: {', '.join(VARIANTS)}")

    module, extras = load_torchscript(args.model)
    task, meta = model_task(extras)
    shape = input_shape(args, task, meta, extras)
    if args.video and task != "detect":
        raise BenchError("--video needs a detector model")
    out = {"model": args.model, "task": task, "device": device.type, "dtype": str(dtype).replace("torch.", ""),
           "threads": torch.get_num_threads(), "shape": shape, "warmup": args.warmup, "iters": args.iters,
           "jit_executor": args.jit_executor, "isolated": args.isolate, "file_form": file_form(module),
           "variants": {}}
    setup = Setup(args, task, meta, out["file_form"], shape, device, dtype)
    del module
    rss = [peak_rss_mb()]
    for name in names:
        if args.isolate:
            child = _child(args, shape, name, video=False)
            out["variants"][name] = child["variants"][name]
            rss.append(child["peak_rss_mb"])
        else:
            out["variants"][name] = measure_variant(name, setup)
    if args.video:
        if args.isolate:
            child = _child(args, shape, "", video=True)
            out["video"] = child["video"]
            rss.append(child["peak_rss_mb"])
        else:
            out["video"] = reference_on_video(args.model, args.video, args.img or None)
    out["peak_rss_mb"] = max(rss + [peak_rss_mb()])
    out["versions"] = versions()
    return out


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}"


def print_text(out: Dict) -> None:
    print(f"model {out['model']} ({out['task']}, file {out['file_form']}) on {out['device']} {out['dtype']}, "
          f"{out['threads']} threads, input {'x'.join(map(str, out['shape']))}, executor {out['jit_executor']}"
          f"{', each variant in a fresh process' if out['isolated'] else ''}")
    print(f"{'variant':<22}{'load ms':>10}{'first ms':>10}{'median':>10}{'p90':>10}{'min':>10}")
    for name, v in out["variants"].items():
        if v["skipped"]:
            print(f"{name:<22}skipped: {v['skipped']}")
            continue
        f = v["forward"]
        print(f"{name:<22}{_fmt(v['load_ms']):>10}{_fmt(v['first_call_ms']):>10}{_fmt(f['median_ms']):>10}"
              f"{_fmt(f['p90_ms']):>10}{_fmt(f['min_ms']):>10}")
    if "video" in out:
        v = out["video"]
        print(f"reference detector on {v['file']}: {v['frames']} frames, {v['fps']:.2f} FPS steady "
              f"({_fmt(v['per_frame_ms'])} ms/frame), wall {v['wall_s']:.2f} s, "
              f"first result {_fmt(v['first_result_s'])} s")
        for stage, s in v["stages"].items():
            print(f"  {stage:<10} median {_fmt(s['median_ms'])} ms, p90 {_fmt(s['p90_ms'])} ms")
    print(f"peak RSS {out['peak_rss_mb']:.1f} MB")


def run(args) -> int:
    try:
        out = run_bench(args)
    except (BenchError, Yolov5Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BenchError) else 1
    if args.json:
        print(json.dumps(out))
    else:
        print_text(out)
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="forward latency of eager/traced/scripted variants and the reference detector's rate",
        description="Forward-only latency of a TorchScript model as eager, traced and scripted modules, each also "
                    "frozen and optimize_for_inference'd; with --video, the reference detector on the video. "
                    "The Python counterpart of `jitvision bench`.")
    p.add_argument("--model", required=True, help="TorchScript file (detector or digit classifier)")
    p.add_argument("--weights", help="detector checkpoint (.pt) for the eager variant (default: the one the file "
                                     "was exported from, if found under $JITVISION_DATA_DIR/weights)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default auto")
    p.add_argument("--half", action="store_true", help="FP16 (CUDA only)")
    p.add_argument("--img", type=int, default=0, help="square input size for detectors (default: the model's)")
    p.add_argument("--shape", default="", help="exact input shape BxCxHxW, e.g. 1x3x384x640 (overrides --img)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    p.add_argument("--warmup", type=int, default=5, help="untimed forwards after the first call (default 5)")
    p.add_argument("--iters", type=int, default=30, help="timed forwards (default 30)")
    p.add_argument("--video", help="also run the reference detector over this video")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    p.add_argument("--jit-executor", default="profiling", choices=EXECUTORS,
                   help="profiling (torch's default), legacy (profiling executor off) or unoptimized "
                        "(graph executor optimisation off)")
    p.add_argument("--isolate", action="store_true", help="measure each variant in a fresh child process")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)

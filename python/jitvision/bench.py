"""``python -m jitvision bench``: the Python side of ``jitvision bench``.

Forward-only latency (first call, each warm-up call, then median/p90/min over N calls) of one model as eager,
traced and scripted modules, each as is, frozen (``torch.jit.freeze``) and frozen + ``optimize_for_inference``;
with ``--video``, the reference detector's end-to-end rate on that video (wall time, first result, steady FPS,
per-stage median/p90). Field names follow the C++ command's JSON so the two can be set side by side.

Without ``--isolate`` every variant runs in this process, so later variants profit from the lazy initialisation
(thread pool, oneDNN primitives, first-touch memory) the earlier ones paid for; ``--isolate`` runs each in a fresh
child process, whose first call is then comparable with a fresh ``jitvision bench``.

A variant that cannot be built or run is a ``skipped`` row with one short reason (TorchScript's internal names and
addresses left out). The figures come with a noise check (``noise`` in the JSON, a ``warning:`` line on stderr):
too noisy when a variant's timed forwards spread by more than ``NOISY_SPREAD`` (p90 over median) or when the
1-minute load average, read before and after, exceeds ``NOISY_LOAD`` x the usable CPU cores.
"""
import argparse
import json
import math
import os
import platform
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from jitvision.device import pick_device
from jitvision.errors import InputError, JitvisionError, UsageError
from jitvision.firewall import add_trust_flag
from jitvision.model_file import ModelContract, ModelKind, input_shape, load_model, quiet_jit_warnings, read_contract

FORMS = ("eager", "traced", "scripted")
STEPS = ("", "+freeze", "+freeze+ofi")
VARIANTS = tuple(f + s for f in FORMS for s in (STEPS if f != "eager" else ("",)))
# How the TorchScript graph executor is set before anything is loaded (the first-call study compares these).
EXECUTORS = ("profiling", "legacy", "unoptimized")


class BenchError(UsageError):
    """A bench run that cannot be done as asked (bad shape, model without a known input, ...)."""


# The noise check: figures are flagged when a variant's p90 is more than NOISY_SPREAD above its median, or when
# the 1-minute load average (before or after) is above NOISY_LOAD per usable CPU core.
NOISY_SPREAD = 0.25
NOISY_LOAD = 1.0
MAX_REASON = 120  # characters of an exception's message kept in a skipped row
TORCHSCRIPT_BOILERPLATE = ("The following operation failed in the TorchScript interpreter.",
                           "Traceback of TorchScript code:")


def short_reason(exc: BaseException) -> str:
    """One short line from an exception: its first informative line, TorchScript's mangled class names and
    compilation-unit addresses removed, cut at MAX_REASON characters."""
    lines = [line.strip() for line in str(exc).splitlines()]
    line = next((text for text in lines if text and text not in TORCHSCRIPT_BOILERPLATE), type(exc).__name__)
    line = re.sub(r" \(of Python compilation unit at: 0x[0-9a-f]+\)", "", line)
    line = re.sub(r"___torch_mangle_\d+\.", "", line).replace("__torch__.", "").rstrip(":")
    return line if len(line) <= MAX_REASON else line[:MAX_REASON - 3].rstrip() + "..."


def spread(samples: Sequence[float]) -> Optional[float]:
    """(p90 - median) / median of timed forwards, or None without samples."""
    s = stats(samples)
    return None if not s["n"] or s["median_ms"] <= 0 else (s["p90_ms"] - s["median_ms"]) / s["median_ms"]


def noise_check(spreads: Dict[str, Optional[float]], load_before: float, load_after: float, cpus: int) -> Dict:
    """The noise record of a run: the inputs and ``warning``, one line or None when the figures look steady."""
    noisy = sorted(name for name, value in spreads.items() if value is not None and value > NOISY_SPREAD)
    load = max(load_before, load_after)
    reasons = []
    if noisy:
        reasons.append(f"p90 more than {NOISY_SPREAD:.0%} above the median in {', '.join(noisy)}")
    if load > NOISY_LOAD * cpus:
        reasons.append(f"load average {load:.1f} on {cpus} CPU cores")
    warning = f"the machine is too noisy for these figures ({'; '.join(reasons)})" if reasons else None
    return {"spread": spreads, "load_before": load_before, "load_after": load_after, "cpus": cpus,
            "warning": warning}


def load_average() -> float:
    return os.getloadavg()[0]


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


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def forward_shape(args, contract: ModelContract) -> List[int]:
    """The forward shape: --shape, else the model's; with --video the letterboxed shape of its first frame."""
    if args.shape:
        return parse_shape(args.shape)
    if contract.kind == ModelKind.UNKNOWN:
        raise BenchError(f"cannot tell the input shape of {args.model}: pass --shape BxCxHxW")
    if not args.video:
        return input_shape(contract, args.img)
    capture = cv2.VideoCapture(args.video)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise InputError(f"video {args.video} cannot be read")
    return input_shape(contract, args.img, frame.shape[:2])


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
    kind: ModelKind
    metadata: Dict  # jitvision.json ({} without)
    file_form: str  # "traced", "scripted" or "mixed" (traced with scripted parts): how the file was made
    shape: List[int]
    device: torch.device
    dtype: torch.dtype


def eager_model(setup: Setup) -> Tuple[Optional[torch.nn.Module], str]:
    """The eager model with the file's weights, or None and why not."""
    if setup.kind == ModelKind.CLASSIFIER:
        from jitvision.mnist.model import DigitNet

        model = DigitNet()
        try:
            model.load_state_dict(load_model(setup.args.model).module.state_dict())
        except RuntimeError:
            return None, "the file's weights do not fit DigitNet's default layout"
        return model.eval(), ""
    if setup.kind == ModelKind.DETECTOR:
        weights, why = _detector_weights(setup.args, setup.metadata)
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

    build = build_kind(module)  # a mixed file is neither form: both rows are then made from the eager model
    return "scripted" if build == "scripted" else "mixed" if build.startswith("traced, with") else "traced"


def build_variant(name: str, setup: Setup):
    """(callable, how it was made) for one variant; raises BenchError when it cannot be built."""
    form, _, steps = name.partition("+")
    if form == setup.file_form:
        module = load_model(setup.args.model).module.to(setup.device, setup.dtype)
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
                raise BenchError(f"torch.jit.{verb} fails: {short_reason(exc)}") from None
        source = f"{form} from the eager model"
    with quiet_jit_warnings():
        try:
            if steps:
                module = torch.jit.freeze(module.eval())
            if steps == "freeze+ofi":
                module = torch.jit.optimize_for_inference(module)
        except RuntimeError as exc:
            raise BenchError(f"torch.jit.{'freeze' if steps == 'freeze' else 'optimize_for_inference'} fails: "
                             f"{short_reason(exc)}") from None
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
    return {"first_call_ms": first, "warmup_ms": warm, "forward": {**stats(timed), "spread": spread(timed)}}


def measure_variant(name: str, setup: Setup) -> Dict:
    entry = {"source": None, "load_ms": None, "first_call_ms": None, "warmup_ms": [], "forward": stats([]),
             "skipped": None}
    start = time.perf_counter()
    try:
        module, entry["source"] = build_variant(name, setup)
    except JitvisionError as exc:
        entry["skipped"] = str(exc)
        return entry
    entry["load_ms"] = (time.perf_counter() - start) * 1000
    x = torch.rand(setup.shape, generator=torch.Generator().manual_seed(0)).to(setup.device, setup.dtype)
    try:
        entry.update(time_forward(module, x, setup.args.warmup, setup.args.iters, setup.device))
    except RuntimeError as exc:
        entry.update(load_ms=None, skipped=forward_failure(name, setup.args.jit_executor, exc))
    return entry


def forward_failure(name: str, executor: str, exc: RuntimeError) -> str:
    if "+freeze" in name and executor == "unoptimized" and "Couldn't find method" in str(exc):
        return "frozen modules do not run with --jit-executor unoptimized (it calls submodule methods freezing removed)"
    return f"forward fails: {short_reason(exc)}"


def reference_on_video(model: str, video: str, img_size: Optional[int]) -> Dict:
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
            found = detect(detector, item[2], img_size)
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
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise BenchError(f"the child bench of {variants or 'the video'} failed: {last}")
    return json.loads(proc.stdout)


def _bench_dtype(args, device: torch.device) -> torch.dtype:
    half = args.half and device.type == "cuda"
    if args.half and not half:
        print("jitvision: warning: --half needs CUDA; measuring FP32 on the CPU", file=sys.stderr)
    return torch.float16 if half else torch.float32


def _variant_names(spec: str) -> List[str]:
    names = [v for v in spec.split(",") if v]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise BenchError(f"unknown variant(s) {', '.join(sorted(unknown))}; known: {', '.join(VARIANTS)}")
    return names


def _measure_all(args, names: List[str], shape: List[int], setup: Setup) -> Tuple[Dict, Optional[Dict], List[float]]:
    """Each variant's figures and, with --video, the video's: in this process, or with --isolate each in a child
    process of its own (their peak RSS comes back too)."""
    variants, video, child_rss = {}, None, []
    for name in names:
        if args.isolate:
            child = _child(args, shape, name, video=False)
            variants[name] = child["variants"][name]
            child_rss.append(child["peak_rss_mb"])
        else:
            variants[name] = measure_variant(name, setup)
    if args.video:
        if args.isolate:
            child = _child(args, shape, "", video=True)
            video = child["video"]
            child_rss.append(child["peak_rss_mb"])
        else:
            video = reference_on_video(args.model, args.video, args.img or None)
    return variants, video, child_rss


def run_bench(args) -> Dict:
    set_executor(args.jit_executor)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dtype = _bench_dtype(args, device)
    names = _variant_names(args.variants)

    loaded = load_model(args.model)
    contract = read_contract(loaded)
    shape = forward_shape(args, contract)
    if args.video and contract.kind != ModelKind.DETECTOR:
        raise BenchError("--video needs a detector model")
    module = loaded.module
    out = {"model": args.model, "task": contract.task, "device": device.type, "dtype": str(dtype).replace("torch.", ""),
           "threads": torch.get_num_threads(), "shape": shape, "warmup": args.warmup, "iters": args.iters,
           "jit_executor": args.jit_executor, "isolated": args.isolate, "file_form": file_form(module),
           "variants": {}}
    setup = Setup(args, contract.kind, loaded.metadata or {}, out["file_form"], shape, device, dtype)
    del module, loaded
    rss = [peak_rss_mb()]
    load_before = load_average()
    out["variants"], video, child_rss = _measure_all(args, names, shape, setup)
    if args.video:
        out["video"] = video
    out["peak_rss_mb"] = max(rss + child_rss + [peak_rss_mb()])
    out["noise"] = noise_check({name: v["forward"].get("spread") for name, v in out["variants"].items()},
                               load_before, load_average(), len(os.sched_getaffinity(0)))
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
    out = run_bench(args)
    if out["noise"]["warning"]:
        print(f"jitvision: warning: {out['noise']['warning']}", file=sys.stderr)
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
    add_trust_flag(p)
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

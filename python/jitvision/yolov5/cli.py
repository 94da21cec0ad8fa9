"""``python -m jitvision yolov5 {import,detect,train,val}``."""
import argparse
import sys
import time

from jitvision.errors import UsageError
from jitvision.firewall import add_trust_flag
from jitvision.pt2 import DEVICES, DTYPES
from jitvision.yolov5.export import EXPORT_METHODS
from jitvision.yolov5.training_cli import add_training_commands, threshold


def run_import(args) -> int:
    from jitvision.yolov5.checkpoint import import_checkpoint
    from jitvision.yolov5.export import TOLERANCE, VERIFY_BATCH, export_pt2, export_torchscript
    from jitvision.yolov5.reimport import import_export, is_torchscript

    if args.format == "pt2" and (args.half or args.fixed or args.method != "trace"):
        raise UsageError("--half, --fixed and --method apply to TorchScript; a .pt2 package is dynamic and takes "
                         "--dtype and --device")
    if args.format == "torchscript" and (args.dtype != "fp32" or args.device != "cpu"):
        raise UsageError("--dtype and --device apply to --format pt2 (TorchScript: --half)")

    start = time.perf_counter()
    imported = import_export(args.weights) if is_torchscript(args.weights) else import_checkpoint(args.weights)
    model = imported.model
    params = sum(p.numel() for p in model.parameters())
    print(f"imported {imported.file} (sha256 {imported.sha256[:16]}...) in {time.perf_counter() - start:.1f} s: "
          f"{model.nc} classes, strides {model.strides}, {params:,} parameters before fusing")
    source = {"file": imported.file, "sha256": imported.sha256}
    if args.format == "pt2":
        return _report_pt2(export_pt2(model, args.out, img_size=args.img, dtype=args.dtype, device=args.device,
                                      source=source))
    result = export_torchscript(model, args.out, img_size=args.img, half=args.half, fixed=args.fixed,
                                source=source, method=args.method)
    sizes = ", ".join(f"{h}x{w}" for h, w in result.sizes)
    kind = f"fixed {args.img}x{args.img}, square letterbox" if args.fixed else "dynamic size, rect letterbox"
    print(f"exported {result.path} by {args.method} ({kind}{', fp16 weights' if args.half else ''}) "
          f"in {result.seconds:.1f} s")
    print(f"verified TorchScript vs eager at {sizes} (batch {VERIFY_BATCH}; the last size at batch 1 too): "
          f"max abs diff {result.max_abs_diff:.3g} (tolerance {TOLERANCE:g})")
    if result.half_max_abs_diff is not None:
        h, w = result.sizes[-1]
        print(f"verified fp16 TorchScript vs fp16 eager at {h}x{w} (batch 1): "
              f"max abs diff {result.half_max_abs_diff:.3g}")
    bf16 = result.metadata["verification"]["bf16"]
    if bf16 is not None:
        h, w = result.sizes[-1]
        print(f"bf16 as the app runs it (--dtype bf16: body bf16, Detect head fp32) vs fp32 eager at {h}x{w}: boxes "
              f"within {bf16['box_px']:.3g} px, confidences within {bf16['confidence']:.3g} (random input; "
              "docs/BENCHMARKS.md has the photos and mAP)")
    return 0


def positive_int(text: str) -> int:
    """argparse type of --vid-stride: a whole number from 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"Value {text} not a whole number from 1")
    return int(text)


def img_size(sides):
    """--img/--imgsz: one side, or the larger of two (H W) with a warning, as the C++ app."""
    if sides is None:
        return None
    if len(sides) > 2:
        raise UsageError(f"--img takes one or two sizes, not {len(sides)}")
    if len(sides) == 2 and sides[0] != sides[1]:
        print(f"jitvision: warning: --imgsz {sides[0]} {sides[1]}: the letterbox fits the longest side and keeps "
              f"the frame's aspect ratio; using --img {max(sides)}", file=sys.stderr)
    return max(sides)


def _report_pt2(result) -> int:
    meta = result.metadata
    sizes = ", ".join(f"{h}x{w}" for h, w in result.sizes)
    print(f"exported {result.path}: AOTInductor package for {meta['device']}, {meta['dtype']} "
          f"(dynamic batch 1-{meta['max_batch']} and size, multiples of {meta['stride']}) in {result.seconds:.1f} s")
    check = meta["verification"]
    print(f"verified the package vs eager{'' if meta['dtype'] == 'fp32' else ' in the same precision'} at "
          f"{sizes if meta['dtype'] == 'fp32' else sizes.split(', ')[-1]}: max abs diff {result.max_abs_diff:.3g} "
          f"(tolerance {check['tolerance']:g})")
    if "vs_fp32" in check:
        print(f"{meta['dtype']} vs fp32 eager: boxes within {check['vs_fp32']['box_px']:.3g} px, confidences within "
              f"{check['vs_fp32']['confidence']:.3g}")
    return 0


def read_sources_file(path: str) -> list:
    """--sources FILE: one source per line; blank lines and lines starting with # are skipped (as the C++ app)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--sources {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    found = [line.strip() for line in text.splitlines()]
    found = [line for line in found if line and not line.startswith("#")]
    if not found:
        raise UsageError(f"--sources {path}: names no source (one per line)")
    return found


def run_detect(args) -> int:
    sources = list(args.source or []) + (read_sources_file(args.sources) if args.sources else [])
    if not sources:
        raise UsageError("detect needs --source SOURCE or --sources FILE")
    from jitvision.yolov5.detect import (
        detect,
        escape_invalid_utf8,
        iter_source_frames,
        json_record,
        load_detector,
        resolve_classes,
    )

    detector = load_detector(args.model)
    classes = resolve_classes(args.classes, detector.names)
    for item in iter_source_frames(sources, args.vid_stride):
        source, frame, image = item.source, item.frame, item.image
        start = time.perf_counter()
        found = detect(detector, image, img_size(args.img), args.conf, args.iou, classes, args.max_det,
                       args.agnostic_nms)
        ms = (time.perf_counter() - start) * 1000
        if args.json:
            print(json_record(source, frame, image, found, item.source_index, item.timestamp, item.position_ms),
                  flush=True)
            continue
        counts = {}
        for d in found:
            counts[d["name"]] = counts.get(d["name"], 0) + 1
        summary = ", ".join(f"{n} {name}" for name, n in counts.items()) or "no detections"
        shape = f"{image.shape[0]}x{image.shape[1]}"
        print(f"{escape_invalid_utf8(source)} frame {frame} ({shape}): {summary} ({ms:.1f} ms)")
        for d in found:
            x1, y1, x2, y2 = d["xyxy"]
            print(f"  {d['name']:<16} {d['conf']:.3f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]")
    return 0


def add_parser(subparsers) -> None:
    group = subparsers.add_parser("yolov5", help="YOLOv5: import official checkpoints, detect")
    commands = group.add_subparsers(dest="yolov5_command", required=True, metavar="SUBCOMMAND")

    imp = commands.add_parser(
        "import", aliases=["export"],
        help="read a YOLOv5 .pt checkpoint safely and export verified TorchScript (or a .pt2 package)",
        description="Read a YOLOv5 checkpoint without executing anything from it (official ones from train.py, "
                    "export.py or the hub, or our own from `yolov5 train`), then export TorchScript (dynamic input "
                    "size unless --fixed) or an AOTInductor .pt2 package, and verify it against the eager model. "
                    "`yolov5 export` is the same command.")
    imp.add_argument("weights", help="YOLOv5 checkpoint (.pt), e.g. yolov5n.pt or runs/train/exp/weights/best.pt, "
                                     "or a TorchScript file jitvision exported (exported again as today's exporter "
                                     "does, e.g. for --dtype bf16 in the C++ app)")
    imp.add_argument("--out", required=True, help="TorchScript file to write")
    imp.add_argument("--img", type=int, default=640, help="nominal input size (square side), default 640")
    imp.add_argument("--half", action="store_true", help="store fp16 weights (the module then expects fp16 input)")
    imp.add_argument("--fixed", action="store_true",
                     help="official-style fixed IMGxIMG model (square letterbox) instead of a dynamic one")
    imp.add_argument("--method", choices=EXPORT_METHODS, default="trace",
                     help="how the model becomes TorchScript: trace (default), script, or mixed (the Detect head "
                          "scripted, the rest traced); all three give the same outputs, see docs/yolov5.md")
    imp.add_argument("--format", choices=("torchscript", "pt2"), default="torchscript",
                     help="torchscript (default) or pt2: an AOTInductor package of compiled native code (dynamic "
                          "batch and size; runs in the C++ app with --trust-model, see docs/yolov5.md)")
    imp.add_argument("--dtype", choices=tuple(DTYPES), default="fp32",
                     help="pt2 only: the precision of the backbone and neck (the Detect head stays fp32); bf16 needs "
                          "a CPU with AVX512-BF16 or AMX, fp16 needs --device cuda")
    imp.add_argument("--device", choices=DEVICES, default="cpu", help="pt2 only: the device it is compiled for")
    imp.set_defaults(func=run_import)

    det = commands.add_parser(
        "detect", help="reference detector: boxes for images, directories, globs and videos",
        description="Detect objects with a TorchScript model (ours or official) or a .pt checkpoint, using the "
                    "YOLOv5 reference letterbox, NMS and box scaling.")
    det.add_argument("--model", "--weights", required=True, help="TorchScript file or .pt checkpoint")
    add_trust_flag(det)
    det.add_argument("--source", nargs="+", help="image files, directories, globs, video files")
    det.add_argument("--sources", metavar="FILE",
                     help="a file of sources, one per line (# comments and blank lines skipped), after any --source")
    det.add_argument("--img", "--imgsz", "--img-size", type=int, nargs="+", default=None, metavar="N",
                     help="letterbox size (default: the model's own, 640 for checkpoints); with two values (H W, "
                          "the official spelling) the larger is used")
    det.add_argument("--conf", "--conf-thres", type=threshold, default=0.25,
                     help="confidence threshold (default 0.25)")
    det.add_argument("--iou", "--iou-thres", type=threshold, default=0.45, help="NMS IoU threshold (default 0.45)")
    det.add_argument("--classes", nargs="+", default=None, help="keep only these classes: indices or names")
    det.add_argument("--agnostic-nms", action="store_true", help="boxes of different classes suppress each other")
    det.add_argument("--max-det", type=int, default=1000, help="most boxes per image (default 1000)")
    det.add_argument("--vid-stride", type=positive_int, default=1, help="keep every Nth frame of videos (default 1)")
    det.add_argument("--json", action="store_true", help="one JSON line per frame")
    det.set_defaults(func=run_detect)

    add_training_commands(commands)


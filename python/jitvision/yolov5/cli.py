"""``python -m jitvision yolov5 {import,detect,train,val}``."""
import time

from jitvision.firewall import add_trust_flag
from jitvision.yolov5.export import EXPORT_METHODS
from jitvision.yolov5.training_cli import add_training_commands, threshold


def run_import(args) -> int:
    from jitvision.yolov5.checkpoint import import_checkpoint
    from jitvision.yolov5.export import TOLERANCE, VERIFY_BATCH, export_torchscript

    start = time.perf_counter()
    imported = import_checkpoint(args.weights)
    model = imported.model
    params = sum(p.numel() for p in model.parameters())
    print(f"imported {imported.file} (sha256 {imported.sha256[:16]}...) in {time.perf_counter() - start:.1f} s: "
          f"{model.nc} classes, strides {model.strides}, {params:,} parameters before fusing")
    result = export_torchscript(model, args.out, img_size=args.img, half=args.half, fixed=args.fixed,
                                source={"file": imported.file, "sha256": imported.sha256}, method=args.method)
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
    return 0


def run_detect(args) -> int:
    from jitvision.yolov5.detect import detect, escape_invalid_utf8, iter_frames, json_record, load_detector

    detector = load_detector(args.model)
    for source, frame, image in iter_frames(args.source):
        start = time.perf_counter()
        found = detect(detector, image, args.img, args.conf, args.iou, args.classes, args.max_det)
        ms = (time.perf_counter() - start) * 1000
        if args.json:
            print(json_record(source, frame, image, found), flush=True)
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
        "import", help="read a YOLOv5 .pt checkpoint safely and export verified TorchScript",
        description="Read an official-format YOLOv5 checkpoint without executing anything from it, then export "
                    "TorchScript (dynamic input size unless --fixed) and verify it against the eager model.")
    imp.add_argument("weights", help="YOLOv5 checkpoint (.pt), e.g. yolov5n.pt")
    imp.add_argument("--out", required=True, help="TorchScript file to write")
    imp.add_argument("--img", type=int, default=640, help="nominal input size (square side), default 640")
    imp.add_argument("--half", action="store_true", help="store fp16 weights (the module then expects fp16 input)")
    imp.add_argument("--fixed", action="store_true",
                     help="official-style fixed IMGxIMG model (square letterbox) instead of a dynamic one")
    imp.add_argument("--method", choices=EXPORT_METHODS, default="trace",
                     help="how the model becomes TorchScript: trace (default), script, or mixed (the Detect head "
                          "scripted, the rest traced); all three give the same outputs, see docs/yolov5.md")
    imp.set_defaults(func=run_import)

    det = commands.add_parser(
        "detect", help="reference detector: boxes for images, directories, globs and videos",
        description="Detect objects with a TorchScript model (ours or official) or a .pt checkpoint, using the "
                    "YOLOv5 reference letterbox, NMS and box scaling.")
    det.add_argument("--model", required=True, help="TorchScript file or .pt checkpoint")
    add_trust_flag(det)
    det.add_argument("--source", required=True, nargs="+", help="image files, directories, globs, video files")
    det.add_argument("--img", type=int, default=None,
                     help="letterbox size (default: the model's own, 640 for checkpoints)")
    det.add_argument("--conf", type=threshold, default=0.25, help="confidence threshold (default 0.25)")
    det.add_argument("--iou", type=threshold, default=0.45, help="NMS IoU threshold (default 0.45)")
    det.add_argument("--classes", type=int, nargs="+", default=None, help="keep only these class indices")
    det.add_argument("--max-det", type=int, default=1000, help="most boxes per image (default 1000)")
    det.add_argument("--json", action="store_true", help="one JSON line per frame")
    det.set_defaults(func=run_detect)

    add_training_commands(commands)


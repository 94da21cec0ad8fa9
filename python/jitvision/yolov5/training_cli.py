"""``python -m jitvision yolov5 {train,val}`` (registered by :mod:`jitvision.yolov5.cli`)."""
import argparse
import json
import math

from jitvision.errors import ModelError, UsageError
from jitvision.yolov5.export import EXPORT_METHODS


def threshold(text: str) -> float:
    """argparse type of --conf and --iou: a finite number from 0 to 1 (as the C++ app's finite_range); a NaN IoU
    threshold would turn NMS off."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"Value {text} not a finite number in range [0 - 1]")
    return value


def _parse_hyp(items):
    hyp = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            hyp[key] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"--hyp {item!r}: expected KEY=NUMBER")
    return hyp


def run_train(args) -> int:
    import torch

    from jitvision.yolov5.train import TrainOptions, train

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume:
        summary = train(None, resume=args.resume)
    else:
        if not args.data:
            raise UsageError("--data is required (unless --resume)")
        opts = TrainOptions(data=args.data, cfg=args.cfg, weights=args.weights, img=args.img, epochs=args.epochs,
                            batch=args.batch, device=args.device, workers=args.workers,
                            project=args.project, name=args.name, exist_ok=args.exist_ok,
                            optimizer=args.optimizer, cos_lr=not args.linear_lr, hyp=_parse_hyp(args.hyp),
                            seed=args.seed, export=not args.no_export, export_method=args.export_method,
                            freeze=args.freeze)
        summary = train(opts)
    print(f"run folder: {summary['out']}")
    final = summary["final"]
    print(f"done in {summary['seconds']:.0f} s: last epoch mAP@0.5 {final['mAP50']:.4f}, "
          f"mAP@0.5:0.95 {final['mAP50-95']:.4f}; best checkpoint {summary['best']}")
    if "torchscript" in summary:
        print(f"exported {summary['torchscript']} (verified)")
    return 0


def run_val(args) -> int:
    import torch

    from jitvision.precision import convert_except_head, require_fp32_head
    from jitvision.yolov5.dataset import load_data_config
    from jitvision.yolov5.detect import load_detector
    from jitvision.yolov5.train import is_training_checkpoint, load_training_checkpoint, model_from_checkpoint
    from jitvision.yolov5.val import evaluate, format_report, load_val_set

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data_config(args.data)
    if is_training_checkpoint(args.weights):
        ckpt = load_training_checkpoint(args.weights)
        model = model_from_checkpoint(ckpt)
        names, stride, img = model.names, max(model.strides), args.img or ckpt["options"]["img"]
        dtype = torch.float32
        predict = lambda x: model(x)[0]  # noqa: E731
        head = model.detect_name
    else:
        detector = load_detector(args.weights)
        if detector.fixed_shape is not None:
            raise ModelError(f"{args.weights} takes only fixed-size input; validation needs a dynamic model")
        names, stride, img, dtype = detector.names, detector.stride, args.img or detector.img_size, detector.dtype
        predict = lambda x: detector.module(x)[0]  # noqa: E731
        head = detector.fp32_head
    if args.dtype == "bf16":  # as the C++ app's --dtype bf16: the body in bf16, the Detect head in float32
        convert_except_head(model if is_training_checkpoint(args.weights) else detector.module, torch.bfloat16,
                            require_fp32_head(args.weights, head))
        dtype = torch.bfloat16
    if len(names) != data.nc:
        raise ModelError(f"the model has {len(names)} classes, {args.data} has {data.nc}")
    result = evaluate(predict, load_val_set(data.val, data.nc), data.nc, img, stride, dtype,
                      conf_thres=args.conf, iou_thres=args.iou, batch=args.batch)
    if args.json:
        print(json.dumps({**result.metrics.as_dict(), "img": img, "dtype": args.dtype,
                          "ms_per_image": round(result.ms_per_image, 2)}))
    else:
        print(format_report(result, names))
    return 0


def add_training_commands(commands) -> None:
    train = commands.add_parser(
        "train", help="train or fine-tune YOLOv5 on a YOLO-format data set",
        description="Train YOLOv5 on a YOLO-format data set (DATA.yaml naming train/val image folders and the "
                    "class names), from scratch (--cfg) or from a checkpoint (--weights: official .pt or ours). "
                    "Each run gets a new folder RUN (PROJECT/NAME, then NAME2, NAME3, ...; --exist-ok reuses "
                    "PROJECT/NAME; --resume continues in the folder of the run it resumes) and writes "
                    "RUN/weights/{last,best}.pt, "
                    "RUN/results.csv and a verified RUN/weights/best.torchscript.")
    train.add_argument("--data", help="data YAML")
    train.add_argument("--cfg", choices=("n", "s", "m", "l", "x"), help="model scale (default: that of --weights)")
    train.add_argument("--weights", help="checkpoint to start from (matching tensors are copied)")
    train.add_argument("--img", "--imgsz", "--img-size", type=int, default=320,
                       help="training image size (default 320)")
    train.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    train.add_argument("--batch", "--batch-size", type=int, default=16, help="batch size (default 16)")
    train.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    train.add_argument("--workers", type=int, default=2, help="data loading processes (default 2)")
    train.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's own)")
    train.add_argument("--project", default="runs/train", help="folder holding the run folders (default runs/train)")
    train.add_argument("--name", default="exp", help="run folder name, numbered NAME2, NAME3, ... when taken "
                                                     "(default exp)")
    train.add_argument("--exist-ok", action="store_true", help="write into PROJECT/NAME even if it exists")
    train.add_argument("--resume", metavar="CKPT",
                       help="continue an interrupted run from its last.pt, with its options, in its run folder")
    train.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd", help="default sgd")
    train.add_argument("--linear-lr", action="store_true", help="linear instead of cosine learning-rate decay")
    train.add_argument("--hyp", nargs="+", metavar="KEY=VALUE",
                       help="override hyper-parameters, e.g. lr0=0.005 warmup_epochs=1 mosaic=0.5")
    train.add_argument("--freeze", type=int, default=0, metavar="N",
                       help="keep the first N layers as loaded from --weights (e.g. 3: the stem; default 0)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-export", action="store_true", help="skip the TorchScript export of best.pt")
    train.add_argument("--export-method", choices=EXPORT_METHODS, default="trace",
                       help="how best.pt becomes TorchScript: trace (default), script or mixed (see yolov5 import)")
    train.set_defaults(func=run_train)

    val = commands.add_parser(
        "val", help="precision, recall, mAP@0.5 and mAP@0.5:0.95 on a data set's val split",
        description="Score a model (training checkpoint, TorchScript file or official .pt) on the val images of "
                    "DATA.yaml the COCO way: 101-point interpolated AP per class at IoU 0.50:0.05:0.95.")
    val.add_argument("--data", required=True, help="data YAML")
    val.add_argument("--weights", required=True, help="best.pt, a TorchScript detector or an official .pt")
    val.add_argument("--img", "--imgsz", "--img-size", type=int, default=None,
                     help="letterbox size (default: the model's training size)")
    val.add_argument("--conf", "--conf-thres", type=threshold, default=0.001,
                     help="confidence threshold (default 0.001)")
    val.add_argument("--iou", "--iou-thres", type=threshold, default=0.6, help="NMS IoU threshold (default 0.6)")
    val.add_argument("--batch", "--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    val.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's own)")
    val.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    val.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                     help="bf16: the body in bfloat16 and the Detect head in float32, as the C++ app's --dtype bf16 "
                          "(needs an export with \"mixed_precision\" in its metadata)")
    val.set_defaults(func=run_val)

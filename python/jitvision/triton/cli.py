"""``python -m jitvision triton export|serve|detect``: the command line of :mod:`.export`, :mod:`.serve` and
:mod:`.client`."""
from typing import NoReturn

from jitvision.firewall import add_trust_flag
from jitvision.triton import export, serve


def run_export(args) -> int:
    options = export.ExportOptions(args.name or export.default_name(args.model), args.backend, args.max_batch,
                                   args.instances, args.device, args.queue_delay_us)
    entry = export.export_repository(args.model, args.out, options, overwrite=args.overwrite)
    print(f"wrote {entry} ({options.backend} backend, max batch {options.max_batch}, "
          f"{options.instances} {options.device} instance(s))")
    return 0


def run_detect(args) -> int:
    """JSON lines as `yolov5 detect --json` prints them, with the forward done by the Triton server."""
    from jitvision.triton.client import triton_detector
    from jitvision.yolov5.detect import detect, iter_source_frames, json_record

    detector = triton_detector(args.server, args.server_model, args.timeout, args.reconnect)
    for item in iter_source_frames(args.source):
        found = detect(detector, item.image, args.img, args.conf_thres, args.iou_thres)
        print(json_record(item.source, item.frame, item.image, found, item.source_index, item.timestamp,
                          item.position_ms), flush=True)
    return 0


def run_serve(args) -> NoReturn:
    serve.serve(args.repo, serve.ServerPorts(args.http_port, args.grpc_port))  # replaces this process


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("triton", help="serve models with Triton Inference Server",
                                   description="Write a Triton model repository for a model, run the tritonserver "
                                               "of `make triton-env` on one, or detect with the forward on a "
                                               "server (docs/scale-out.md).")
    sub = parser.add_subparsers(dest="triton_command", required=True, metavar="SUBCOMMAND")
    exp = sub.add_parser("export", help="write REPO/NAME: config.pbtxt and the model for one TorchScript file",
                         description="Validates the model (firewall, contract, a forward at batch 2) before "
                                     "anything is written.")
    exp.add_argument("--model", required=True, help="TorchScript file (detector or digit classifier)")
    exp.add_argument("--out", required=True, metavar="REPO", help="model repository folder")
    exp.add_argument("--name", help="model name in the repository (default: the file's stem)")
    exp.add_argument("--backend", choices=export.BACKENDS, default="python",
                     help="libtorch (NVIDIA's server images) or python (also the pytriton wheel; default)")
    exp.add_argument("--max-batch", type=int, default=8, help="max_batch_size (default 8)")
    exp.add_argument("--instances", type=int, default=1, help="model instances per device (default 1)")
    exp.add_argument("--device", choices=export.DEVICES, default="cpu", help="instance kind (default cpu)")
    exp.add_argument("--queue-delay-us", type=int, default=export.QUEUE_DELAY_US,
                     help=f"dynamic batching queue delay in microseconds (default {export.QUEUE_DELAY_US})")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing REPO/NAME")
    add_trust_flag(exp)
    exp.set_defaults(func=run_export)
    det = sub.add_parser("detect", help="detect with the forward done by a Triton server (JSON lines)",
                         description="Letterbox, NMS and box scaling run here, the model on the server; prints one "
                                     "JSON line per frame as `yolov5 detect --json`. Needs tritonclient: run it "
                                     "with .venv-triton/bin/python (`make triton-env`).")
    det.add_argument("source", nargs="+", help="image or video files, directories, globs")
    det.add_argument("--server", required=True, metavar="URL", help="Triton HTTP address, e.g. http://host:8000")
    det.add_argument("--server-model", required=True, metavar="NAME", help="model name in the server's repository")
    det.add_argument("--img", type=int, help="inference size of a dynamic model (default: the model's)")
    det.add_argument("--conf-thres", type=float, default=0.25, help="confidence threshold (default 0.25)")
    det.add_argument("--iou-thres", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    det.add_argument("--timeout", type=float, default=30.0, help="connection and request timeout, s (default 30)")
    det.add_argument("--reconnect", type=int, default=5, metavar="N",
                     help="retries of a refused or dropped connection, with back-off from 0.2 s doubling to 2 s, as "
                          "`jitvision detect --server` (default 5)")
    det.set_defaults(func=run_detect)
    srv = sub.add_parser("serve", help="run the tritonserver of `make triton-env` on a repository",
                         description="Runs in the foreground until stopped (Ctrl-C).")
    srv.add_argument("repo", metavar="REPO", help="model repository folder")
    srv.add_argument("--http-port", type=int, default=8000, help="HTTP/REST port (default 8000)")
    srv.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    srv.set_defaults(func=run_serve)

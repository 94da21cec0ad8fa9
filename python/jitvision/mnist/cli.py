"""``python -m jitvision mnist train|predict|samples``."""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from jitvision.errors import ExportError, InputError, UsageError, error_line

REPO_ROOT = Path(__file__).resolve().parents[3]
MODEL_FILE_NAME = "mnist.torchscript"
DEFAULT_MODEL = REPO_ROOT / "models" / MODEL_FILE_NAME
RUNS_PROJECT = "runs/mnist"  # mnist train without --out writes into a new run folder here (jitvision.runs)
MAX_MODEL_BYTES = 2 * 1024 * 1024


def add_parser(subparsers) -> None:
    mnist = subparsers.add_parser("mnist", help="train, export, check and try the digit model",
                                  description="The MNIST digit model: training and TorchScript export, Python "
                                              "reference predictions, generated demo images.")
    sub = mnist.add_subparsers(dest="mnist_command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train, export by tracing and scripting, verify, write the model",
                           description="Train the digit CNN, export it by tracing and by scripting, verify both "
                                       "against the eager model on the held-out digits, and write one of them.")
    train.add_argument("--data-dir", type=Path, default=None,
                       help="folder with the MNIST IDX files (default: $JITVISION_DATA_DIR/mnist)")
    train.add_argument("--out", type=Path, default=None,
                       help=f"where to write the model (default: {RUNS_PROJECT}/expN/{MODEL_FILE_NAME} in a new run "
                            f"folder exp, exp2, ...; the bundled model is rebuilt with --out models/{MODEL_FILE_NAME})")
    train.add_argument("--export-method", choices=("trace", "script"), default="trace",
                       help="which verified export to write (default: %(default)s)")
    train.add_argument("--epochs", type=int, default=None, help="training epochs (default: 12)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where to train (default: %(default)s, CUDA when available)")
    train.add_argument("--download", action="store_true",
                       help="first fetch the official MNIST files into the data folder (needs network)")
    train.set_defaults(func=run_train)

    export = sub.add_parser("export", help="compile a digit model into an AOTInductor package (.pt2)",
                            description="Compile a TorchScript digit model (from mnist train) into an AOTInductor "
                                        "package with a dynamic batch, verified against the eager network; the C++ "
                                        "app runs it with --trust-model (docs/security.md).")
    export.add_argument("model", type=Path, nargs="?", default=DEFAULT_MODEL,
                        help="TorchScript digit model (default: %(default)s)")
    export.add_argument("--out", type=Path, required=True, help="the package to write (*.pt2)")
    export.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="the device it is compiled for")
    export.set_defaults(func=run_export)

    predict = sub.add_parser("predict", help="Python reference prediction for digit images",
                             description="Predict digits with an exported model in Python. Images must be 28x28 "
                                         "MNIST-style (light on dark) unless --normalize is given.")
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    predict.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="TorchScript model (default: %(default)s)")
    predict.add_argument("--normalize", action="store_true",
                         help="normalise each image the MNIST way first (for photos of any size and polarity)")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.set_defaults(func=run_predict)

    samples = sub.add_parser("samples", help="generate demo digit photos (no data needed)",
                             description="Draw the digits 0-9 by pen and in a font as noisy photos, for the demo.")
    samples.add_argument("--out", type=Path, required=True, help="folder to write the images into")
    samples.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    samples.add_argument("--check", action="store_true",
                         help="also report how many the bundled model reads correctly (Python reference)")
    samples.set_defaults(func=run_samples)


def run_train(args) -> int:
    from jitvision.device import pick_device
    from jitvision.mnist import data
    from jitvision.mnist.train import TrainConfig, train

    data_dir = args.data_dir or data.default_data_dir()
    if data_dir is None:
        raise UsageError("no MNIST data folder: pass --data-dir or set JITVISION_DATA_DIR")
    device = pick_device(args.device)
    if args.download:
        try:
            data.download(data_dir)
        except (RuntimeError, OSError) as e:
            raise InputError(f"cannot download MNIST into {data_dir}: {e}") from None
    split = data.load_split(data_dir)
    cfg = TrainConfig(seed=args.seed) if args.epochs is None else TrainConfig(seed=args.seed, epochs=args.epochs)
    print(f"data: {split.description}")
    print(f"training on {len(split.train_images)} images, holding out {len(split.heldout_images)}, "
          f"device {device}, seed {cfg.seed}, {cfg.epochs} epochs")

    started = time.monotonic()
    model = train(split.train_images, split.train_labels, cfg, device,
                  heldout=(split.heldout_images, split.heldout_labels))
    print(f"trained in {time.monotonic() - started:.0f} s")
    return write_model(model, split, cfg, args.out, args.export_method)


def write_model(model, split, cfg, out: Optional[Path], chosen: str) -> int:
    """Export the trained model both ways, verify each, and write the ``chosen`` one to ``out`` (None: into a new
    run folder under ``RUNS_PROJECT``, so that no earlier model is ever overwritten without being named)."""
    import torch

    from jitvision.mnist import export
    from jitvision.mnist.train import to_input
    from jitvision.runs import new_run_dir

    training = {"data": split.kind, "description": split.description, "train_images": len(split.train_images),
                "heldout_images": len(split.heldout_images), "seed": cfg.seed, "epochs": cfg.epochs}
    heldout_x = to_input(split.heldout_images)
    heldout_y = torch.as_tensor(split.heldout_labels).long()
    model = model.cpu()
    with tempfile.TemporaryDirectory() as tmp:
        written = {}
        for method in export.EXPORT_METHODS:
            path = Path(tmp) / f"mnist.{method}.torchscript"
            try:
                metadata = export.export_verified(model, method, path, heldout_x, heldout_y, training)
            except ExportError as e:
                raise ExportError(f"{method} export failed verification: {e}") from None
            v = metadata["verification"]
            print(f"{method}: verified on {len(heldout_x)} held-out digits and batch sizes "
                  f"{', '.join(map(str, export.CHECK_BATCH_SIZES))}: max abs logit difference "
                  f"{v['max_abs_logit_diff']:.2e}, argmax agree; held-out accuracy {metadata['heldout_accuracy']:.4f}")
            written[method] = path
        size = written[chosen].stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ExportError(f"the {chosen} export is {size} bytes, over the {MAX_MODEL_BYTES}-byte limit")
        out = out or new_run_dir(RUNS_PROJECT) / MODEL_FILE_NAME
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(written[chosen].read_bytes())
    print(f"wrote {out} ({chosen} export, {size / 1024:.0f} KiB)")
    return 0


def _read_digit_image(path: Path, normalize: bool):
    """One image as the model takes it: MNIST-normalised, or as given when it is already 28x28 grey."""
    import cv2
    import numpy as np

    from jitvision.mnist.normalize import BlankImage, mnist_style

    try:
        encoded = np.fromfile(path, np.uint8)
    except OSError as e:
        raise InputError(f"cannot read image {path}: {e.strerror}") from None
    image = cv2.imdecode(encoded, cv2.IMREAD_COLOR if normalize else cv2.IMREAD_GRAYSCALE) if encoded.size else None
    if image is None:
        raise InputError(f"{path} is not an image OpenCV can decode")
    if normalize:
        try:
            return mnist_style(image)
        except BlankImage as e:
            raise InputError(f"{path}: {e}") from None
    if image.shape != (28, 28):
        raise InputError(f"{path} is {image.shape[1]}x{image.shape[0]}, not 28x28: use --normalize")
    return image


def run_export(args) -> int:
    from jitvision.mnist.export import export_pt2

    start = time.perf_counter()
    metadata = export_pt2(str(args.model), str(args.out), args.device)
    check = metadata["verification"]
    print(f"exported {args.out}: AOTInductor package for {args.device}, batch 1-{metadata['max_batch']}, in "
          f"{time.perf_counter() - start:.1f} s; verified vs eager: max abs logit diff "
          f"{check['max_abs_logit_diff']:.3g}, argmax agree: {check['argmax_agree']}")
    return 0


def run_predict(args) -> int:
    from jitvision.mnist.predict import DigitPredictor

    predictor = DigitPredictor(args.model)
    status = 0
    for path in args.images:
        try:
            image = _read_digit_image(path, args.normalize)
        except InputError as e:  # reported, and the other images are still read (as the C++ app does)
            print(error_line(e), file=sys.stderr)
            status = e.exit_code
            continue
        probs = predictor.probabilities(image[None])[0]
        digit = int(probs.argmax())
        if args.json:
            print(json.dumps({"source": str(path), "digit": digit, "prob": float(probs[digit]),
                              "probs": [float(p) for p in probs]}))
        else:
            print(f"{path}: {digit} (prob {probs[digit]:.4f})")
    return status


def run_samples(args) -> int:
    import cv2
    import numpy as np

    from jitvision.mnist.normalize import mnist_style
    from jitvision.mnist.predict import DigitPredictor
    from jitvision.samples import write_samples

    written = write_samples(args.out, args.seed)
    print(f"wrote {len(written)} digit photos to {args.out}")
    if args.check:
        predictor = DigitPredictor(DEFAULT_MODEL)
        images = np.stack([mnist_style(cv2.imread(str(p))) for p, _ in written])
        predicted = predictor.probabilities(images).argmax(1)
        wrong = [f"{p.name}->{d}" for (p, label), d in zip(written, predicted) if int(d) != label]
        print(f"bundled model reads {len(written) - len(wrong)}/{len(written)} correctly"
              + (f"; wrong: {', '.join(wrong)}" if wrong else ""))
    return 0

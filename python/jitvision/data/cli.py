"""``python -m jitvision data {digits,digits-video}``."""
from pathlib import Path

from jitvision.errors import InputError, UsageError


def _mnist_dir(arg):
    from jitvision.mnist.data import default_data_dir

    return arg or default_data_dir()


def run_digits(args) -> int:
    from tqdm import tqdm

    from jitvision.data.digits import write_split

    mnist = _mnist_dir(args.mnist)
    if args.font_fraction != 1:
        if mnist is None:
            raise UsageError("MNIST is needed (unless --font-fraction 1): pass --mnist DIR or set JITVISION_DATA_DIR")
        if not Path(mnist).is_dir():
            raise InputError(f"MNIST folder {mnist} does not exist: pass --mnist DIR (the MNIST IDX files) or set "
                             "JITVISION_DATA_DIR to a folder holding mnist/ (or --font-fraction 1: fonts only)")
    with tqdm(total=args.n, desc=f"digits {args.split}", mininterval=1.0) as bar:
        yaml_path = write_split(args.out, args.split, args.n, args.img, args.seed, mnist, args.font_fraction,
                                progress=lambda done: bar.update(done - bar.n))
    print(f"wrote {args.n} {args.split} images to {args.out} ({yaml_path})")
    return 0


def run_video(args) -> int:
    from jitvision.data.video import write_video

    info = write_video(args.out, args.truth, frames=args.frames, size=(args.width, args.height), fps=args.fps,
                       seed=args.seed, mnist_dir=_mnist_dir(args.mnist), swap_every=args.swap_every)
    print(f"wrote {args.out} ({args.frames} frames, {args.width}x{args.height}) and {args.truth}: "
          f"{info['digits']} digits, 6 at a time, {info['source_description']}")
    return 0


def add_parser(subparsers) -> None:
    group = subparsers.add_parser("data", help="generate synthetic data sets and sample videos")
    commands = group.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    digits = commands.add_parser(
        "digits", help="'digits in scenes' detection data set (YOLO format) from MNIST",
        description="Place MNIST digits as ink on procedural scenes, several per image, with YOLO labels "
                    "(10 classes). --split train takes the MNIST training digits, --split val the held-out ones. "
                    "Writes OUT/images/SPLIT, OUT/labels/SPLIT, OUT/sources/SPLIT.jsonl and OUT/data.yaml.")
    digits.add_argument("--out", type=Path, required=True, help="data set folder")
    digits.add_argument("--n", type=int, required=True, help="number of images")
    digits.add_argument("--split", choices=("train", "val"), default="train")
    digits.add_argument("--img", type=int, default=320, help="image side in pixels (default 320)")
    digits.add_argument("--seed", type=int, default=0)
    digits.add_argument("--mnist", type=Path, default=None, help="MNIST folder (default $JITVISION_DATA_DIR/mnist)")
    digits.add_argument("--font-fraction", type=float, default=None,
                        help="share of digits drawn in OpenCV fonts instead (default 0.15 train, 0 val)")
    digits.set_defaults(func=run_digits)

    video = commands.add_parser(
        "digits-video", help="sample video of digits moving over a scene, with per-frame truth",
        description="Render digits moving over a generated scene, and their boxes per frame as JSON lines "
                    "({frame, boxes (xyxy pixels), cls, digits}). Uses held-out MNIST digits when the data is "
                    "found, else digits drawn in OpenCV fonts (the truth's 'digits' field says which).")
    video.add_argument("--out", type=Path, required=True, help="video file (.mp4 or .avi)")
    video.add_argument("--truth", type=Path, required=True, help="JSON lines file with the boxes per frame")
    video.add_argument("--frames", type=int, default=60)
    video.add_argument("--width", type=int, default=640)
    video.add_argument("--height", type=int, default=360)
    video.add_argument("--fps", type=float, default=15.0)
    video.add_argument("--swap-every", type=int, default=20, metavar="N",
                       help="show new digits every N frames (default 20; 0: the same six throughout)")
    video.add_argument("--seed", type=int, default=0)
    video.add_argument("--mnist", type=Path, default=None,
                       help="MNIST folder (default $JITVISION_DATA_DIR/mnist; fonts when absent)")
    video.set_defaults(func=run_video)

"""Command line: ``python -m jitvision <command> ...``.

Each command group lives in its own module and registers its parser through ``add_parser(subparsers)``;
modules are imported here so that ``--help`` lists every command.
"""
import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from jitvision import __version__
    from jitvision.mnist import cli as mnist_cli
    from jitvision.yolov5 import cli as yolov5_cli
    from jitvision import info as info_cli
    from jitvision.data import cli as data_cli
    from jitvision import bench as bench_cli

    parser = argparse.ArgumentParser(prog="python -m jitvision",
                                     description="Train, export and check TorchScript models for the jitvision app.")
    parser.add_argument("--version", action="version", version=f"jitvision {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mnist_cli.add_parser(sub)
    yolov5_cli.add_parser(sub)
    info_cli.add_parser(sub)
    data_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

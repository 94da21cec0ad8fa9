"""Command line: ``python -m jitvision <command> ...``.

Each command group lives in its own module and registers its parser through ``add_parser(subparsers)``;
modules are imported here so that ``--help`` lists every command. This is the one place where errors become an
exit code and one line on stderr (``jitvision: error: ...``), with the C++ app's codes (see the README).
"""
import argparse
import sys
from typing import Callable, Optional

from jitvision.errors import JitvisionError, UsageError, error_line
from jitvision.firewall import trust_from_args


class _Parser(argparse.ArgumentParser):
    """argparse reporting a bad command line as a UsageError (exit code 2, one line) instead of exiting itself."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    from jitvision import __version__
    from jitvision import bench as bench_cli
    from jitvision import graph as graph_cli
    from jitvision import info as info_cli
    from jitvision.data import cli as data_cli
    from jitvision.mnist import cli as mnist_cli
    from jitvision.triton import cli as triton_cli
    from jitvision.yolov5 import cli as yolov5_cli

    parser = _Parser(prog="python -m jitvision",
                     description="Train, export and check TorchScript models for the jitvision app.")
    parser.add_argument("--version", action="version", version=f"jitvision {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mnist_cli.add_parser(sub)
    yolov5_cli.add_parser(sub)
    info_cli.add_parser(sub)
    data_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    graph_cli.add_parser(sub)
    triton_cli.add_parser(sub)
    return parser


def run(command: Callable[[], Optional[int]]) -> int:
    """Run a command; its exit code, or that of the JitvisionError it raised (reported as one line)."""
    try:
        return int(command() or 0)
    except JitvisionError as exc:
        print(error_line(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv=None) -> int:
    def command() -> Optional[int]:
        args = build_parser().parse_args(argv)
        trust_from_args(args)
        return args.func(args)

    return run(command)


if __name__ == "__main__":
    sys.exit(main())

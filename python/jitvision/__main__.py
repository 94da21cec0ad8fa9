"""Command line: ``python -m jitvision <command> ...``.

Each command group lives in its own module and registers its parser through ``add_parser(subparsers)``;
modules are imported here so that ``--help`` lists every command. This is the one place where errors become an
exit code and one line on stderr (``jitvision: error: ...``), with the C++ app's codes (see the README).
"""
import argparse
import contextlib
import errno
import os
import sys
from typing import Callable, Optional

from jitvision.errors import JitvisionError, OutputError, UsageError, error_line
from jitvision.firewall import trust_from_args


class _Parser(argparse.ArgumentParser):
    """argparse reporting a bad command line as a UsageError (exit code 2, one line) instead of exiting itself."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class _Version(argparse.Action):
    """--version, printed with print() so that run() checks it reached stdout (argparse's own action hides a write
    error)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(self.const)
        raise SystemExit(0)


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
    parser.add_argument("--version", action=_Version, nargs=0, const=f"jitvision {__version__}",
                        default=argparse.SUPPRESS, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mnist_cli.add_parser(sub)
    yolov5_cli.add_parser(sub)
    info_cli.add_parser(sub)
    data_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    graph_cli.add_parser(sub)
    triton_cli.add_parser(sub)
    return parser


_WRITE_ERRNOS = {errno.ENOSPC, errno.EPIPE, errno.EFBIG, errno.EIO, errno.EDQUOT}


def _flush_stdout() -> None:
    """A command whose output is its result must not exit 0 without it: OutputError when stdout lost anything."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        _drop_stdout()
        raise OutputError(f"cannot write to standard output: {exc.strerror}") from None


def _drop_stdout() -> None:
    """Closes a failed stdout (what it still buffers is lost anyway), so that exiting does not report it again."""
    failed, sys.stdout = sys.stdout, open(os.devnull, "w")
    with contextlib.suppress(OSError):
        failed.close()


def run(command: Callable[[], Optional[int]]) -> int:
    """Run a command; its exit code, or that of the JitvisionError it raised (reported as one line). Standard output
    is flushed and checked at the end (exit 6 when it is full or closed); a write that fails for lack of space or
    a closed pipe is an OutputError too."""
    try:
        try:
            code = int(command() or 0)
        except SystemExit as exc:  # argparse's --version and --help print, then exit 0
            if exc.code not in (0, None):
                raise
            code = 0
        except OSError as exc:
            if exc.errno not in _WRITE_ERRNOS:
                raise
            if exc.filename is None:
                _drop_stdout()
            raise OutputError(f"cannot write {exc.filename or 'to standard output'}: {exc.strerror}") from None
        _flush_stdout()
        return code
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

"""The errors every command may raise, each with the exit code the C++ app uses for the same failure.

Only ``python -m jitvision`` (:mod:`jitvision.__main__`) turns them into an exit code and one line on stderr,
``jitvision: error: ...``; anything else that escapes is an internal error (exit code 1). See the README's table.
"""


class JitvisionError(Exception):
    """Base class: the message says what went wrong and, where it helps, what to do about it."""

    exit_code = 1


class UsageError(JitvisionError):
    """A bad command line: unknown flag, bad value, missing argument."""

    exit_code = 2


class ModelError(JitvisionError):
    """A model file is missing, unreadable, not what the command needs, or cannot be exported as asked."""

    exit_code = 3


class ExportError(ModelError):
    """A model cannot be exported as asked, or its TorchScript export does not reproduce the eager model."""


class DeviceError(JitvisionError):
    """The requested device is not usable here (``--device cuda`` without a GPU)."""

    exit_code = 4


class InputError(JitvisionError):
    """An input (image, video, directory, glob, data set) cannot be read."""

    exit_code = 5


class OutputError(JitvisionError):
    """An output cannot be written."""

    exit_code = 6


class SourceLostError(JitvisionError):
    """A live source dropped and did not come back."""

    exit_code = 7


class InferenceServerError(JitvisionError):
    """The inference server (``--server``) is unreachable, or its model is not ready."""

    exit_code = 8


def error_line(exc: BaseException) -> str:
    """The one line a failed command prints on stderr."""
    return f"jitvision: error: {exc}"

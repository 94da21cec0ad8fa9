"""YOLOv5-specific errors, each a kind of :mod:`jitvision.errors` error (which sets the exit code)."""
from jitvision.errors import ExportError, ModelError

__all__ = ["CheckpointError", "ExportError", "UnsafeCheckpointError"]


class CheckpointError(ModelError):
    """The checkpoint is not a YOLOv5 checkpoint we can read, or does not match its architecture."""


class UnsafeCheckpointError(ModelError):
    """The checkpoint's pickle asks to run code; nothing was run."""

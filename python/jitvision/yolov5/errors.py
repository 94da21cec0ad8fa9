"""Errors raised by the YOLOv5 tools; the command line turns them into one line on stderr and exit code 1."""


class Yolov5Error(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class UnsafeCheckpointError(Yolov5Error):
    """The checkpoint's pickle asks to run code; nothing was run."""


class CheckpointError(Yolov5Error):
    """The checkpoint is not a YOLOv5 checkpoint we can read, or does not match its architecture."""


class ExportError(Yolov5Error):
    """Tracing, saving or verifying the TorchScript module failed."""


class ModelFileError(Yolov5Error):
    """A model file given to the detector cannot be used."""


class SourceError(Yolov5Error):
    """An image, directory, glob or video given as a source cannot be read."""

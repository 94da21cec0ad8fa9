"""The one device picker of the Python side, with the C++ app's rules for ``--device``."""
import torch

from jitvision.errors import DeviceError, UsageError


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when usable, else the CPU; ``cpu``; ``cuda`` or ``cuda:N``: that GPU or DeviceError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name}: expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: no usable CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device

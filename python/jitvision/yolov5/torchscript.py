"""Loading TorchScript files together with every extra file they carry (shared by ``detect`` and ``info``)."""
import contextlib
import warnings
import zipfile
from typing import Dict, List, Tuple

import torch

from jitvision.yolov5.errors import ModelFileError


@contextlib.contextmanager
def quiet_jit_warnings():
    """Hide torch 2.14's deprecation warnings for torch.jit.* (expected: TorchScript is what we ship)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        yield


def archive_entries(path: str) -> List[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist") from None
    except (zipfile.BadZipFile, IsADirectoryError):
        raise ModelFileError(f"{path} is not a TorchScript file (not a zip archive)") from None


def extra_file_names(entries: List[str]) -> List[str]:
    """Names of the extra files (``<archive>/extra/<name>``) in a TorchScript archive's entry list."""
    return sorted(e.split("/", 2)[2] for e in entries if e.count("/") >= 2 and e.split("/", 2)[1] == "extra")


def load_torchscript(path: str) -> Tuple[torch.jit.ScriptModule, Dict[str, str]]:
    """Load a TorchScript module on the CPU with all its extra files decoded as text."""
    entries = archive_entries(path)
    if not any(e.endswith("/constants.pkl") or "/code/" in e for e in entries):
        if any(e.endswith("/data.pkl") for e in entries):
            raise ModelFileError(f"{path} is a torch.save checkpoint, not TorchScript: export it with "
                                 "`python -m jitvision yolov5 import`")
        raise ModelFileError(f"{path} is a zip archive but not a TorchScript file")
    extras = {name: "" for name in extra_file_names(entries)}
    try:
        with quiet_jit_warnings():
            module = torch.jit.load(path, map_location="cpu", _extra_files=extras)
    except RuntimeError as exc:
        raise ModelFileError(f"cannot load TorchScript file {path}: {str(exc).splitlines()[0]}") from None
    return module.eval(), {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in extras.items()}

"""AOTInductor packages (``.pt2``): compiling an exported program into one, and reading one back.

A ``.pt2`` is the second model format the C++ app runs (TorchScript is the first): ``torch.export`` captures the
model, AOTInductor compiles it to native code for one device, and the package holds that shared library with the
weights. Our metadata travels in the package as AOTInductor metadata (``aot_inductor.metadata``), under the same
names as the TorchScript extra files (``jitvision.json``, ``config.txt``); the C++ app reads it back with
``AOTIModelPackageLoader::get_metadata()``. A package is native code: it is never checked by the model firewall and
runs only with ``--trust-model`` (docs/security.md).
"""
import json
import os
import shutil
import tempfile
import zipfile
from typing import Callable, Dict, Optional

import torch

from jitvision.errors import DeviceError, ExportError, ModelError, OutputError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICES = ("cpu", "cuda")
ARCHIVE_FORMAT_RECORD = "archive_format"  # torch's package archives hold "<name>/archive_format" = "pt2"


def is_pt2(entries) -> bool:
    """True for a zip entry list that is a torch.export / AOTInductor package."""
    return any(e == ARCHIVE_FORMAT_RECORD or e.endswith("/" + ARCHIVE_FORMAT_RECORD) for e in entries)


def check_target(dtype: str, device: str) -> None:
    """UsageError-free checks of what a package can be built for here: DeviceError for CUDA without a GPU, ExportError
    for fp16 on the CPU and for bf16 on a CPU without native bf16."""
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda needs a usable CUDA GPU to compile the package on")
    if dtype == "fp16" and device != "cuda":
        raise ExportError("--dtype fp16 needs --device cuda (fp16 convolutions are slow or missing on the CPU); "
                          "use --dtype bf16 on the CPU")
    if dtype == "bf16" and device == "cpu" and not torch.backends.mkldnn.is_available():
        raise ExportError("--dtype bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX) and oneDNN")


def compile_package(program: "torch.export.ExportedProgram", out: str, metadata: Dict[str, str],
                    check: Callable[[str], None]) -> None:
    """Compile ``program`` with AOTInductor into ``out`` (a ``*.pt2`` name); ``metadata`` maps names to the text
    stored in the package (read back by :func:`package_metadata` and the C++ app). The package is built in a private
    folder next to ``out``, given to ``check`` (which raises to stop), then renamed over ``out``: readers see the old
    file or the whole new one, and a failed check writes nothing."""
    import torch._inductor

    from jitvision.yolov5.export import check_out_path

    if not os.fspath(out).endswith(".pt2"):
        raise OutputError(f"cannot write {out}: an AOTInductor package must be named *.pt2")
    check_out_path(out)
    folder = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(folder, exist_ok=True)
        work = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", suffix=".partial", dir=folder)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror} ({e.filename or folder})") from None
    partial = os.path.join(work, os.path.basename(out))  # the archive's records are named after the file
    try:
        torch._inductor.aoti_compile_and_package(
            program, package_path=partial, inductor_configs={"aot_inductor.metadata": dict(metadata)})
        check(partial)
        os.chmod(partial, 0o644)
        check_out_path(out)  # again: it may have changed during the compilation
        os.replace(partial, out)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_package(path: str, device: str = "cpu") -> Callable:
    """The compiled model of a package as a callable (for verification at export and for tests)."""
    import torch._inductor

    try:
        return torch._inductor.aoti_load_package(path, device_index=0 if device == "cuda" else -1)
    except (RuntimeError, OSError) as exc:
        raise ModelError(f"cannot load the AOTInductor package {path}: {str(exc).splitlines()[0]}") from None


def package_metadata(path: str) -> Dict[str, str]:
    """The metadata an AOTInductor package carries (our ``jitvision.json``, ``AOTI_DEVICE_KEY``, ...), read from the
    archive without loading its compiled code."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".wrapper_metadata.json") or
                     (n.endswith("_metadata.json") and "/aotinductor/" in n)]
            if not names:
                raise ModelError(f"{path} is a .pt2 archive without AOTInductor metadata (not a compiled package)")
            return json.loads(archive.read(sorted(names)[0]))
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read the metadata of {path}: {exc}") from None


def jitvision_json(path: str) -> Optional[Dict]:
    """Our metadata document inside a package, or None."""
    text = package_metadata(path).get("jitvision.json")
    return json.loads(text) if text else None

"""Read a ``torch.save`` zip archive without importing or executing anything named in it.

The pickle inside may name any global. Only these are resolved to real objects:

- tensor and storage rebuilding (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``, ``torch.*Storage``),
  replaced by our own small functions over the archive's raw bytes;
- ``collections.OrderedDict`` and the built-in ``set``/``frozenset``;
- the two spellings of ``bytes`` in protocol-2 pickles (``_codecs.encode(text, "latin1")`` and ``bytes()``),
  through our own functions that accept nothing else;
- ``pathlib`` paths (``PosixPath``, ``WindowsPath``, ``PurePath``, ...: the official trainer stores them in ``opt``),
  rebuilt as plain strings from their string parts by our own function; ``pathlib`` itself is never imported.

Every other global becomes an inert :class:`Placeholder` class. Instantiating one the way pickle rebuilds plain
objects (``NEWOBJ`` + ``BUILD``, how modules such as ``models.yolo.Model`` or ``torch.nn.Conv2d`` are stored) only
records the object's state. *Calling* a placeholder (``REDUCE``, ``INST``, ``OBJ``: how ``os.system(...)`` or
``eval(...)`` payloads are written) raises :class:`UnsafeCheckpointError` before anything runs. A few numpy data
constructors that ordinary training checkpoints contain (metrics stored as arrays or scalars) are the exception:
calling them returns an inert :class:`Call` record instead of running them.
"""
import collections
import io
import math
import ntpath
import pickle
import pickletools
import posixpath
import zipfile
from typing import Any, Dict, Tuple

import torch

from jitvision.yolov5.errors import CheckpointError, UnsafeCheckpointError

_STORAGE_DTYPES = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "UntypedStorage": torch.uint8,
}

MAX_TENSOR_BYTES = 4 << 30  # one tensor's bytes; yolov5x's largest weight is ~9 MB
MAX_BYTEORDER_BYTES = 16

# Data-only constructors found in ordinary training checkpoints; recorded as Call, never run.
_INERT_CALLS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
}


# What a malformed (not malicious) pickle or archive makes the unpickler raise.
_MALFORMED = (pickle.UnpicklingError, EOFError, AttributeError, IndexError, KeyError, TypeError, ValueError,
              RuntimeError, zipfile.BadZipFile)


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class _PlaceholderMeta(type):
    def __call__(cls, *args, **kwargs):
        raise UnsafeCheckpointError(
            f"refused: the checkpoint's pickle asks to call {cls.qualname}{_short_repr(args)}; "
            "nothing was executed. Only tensors, containers and plain object state are read.")


class Placeholder(metaclass=_PlaceholderMeta):
    """Stands for an object of a class we do not import; ``qualname`` names it, ``__dict__`` keeps its state."""
    qualname = "?"


class Call:
    """An inert record of a data-only constructor call from ``_INERT_CALLS``."""

    def __init__(self, qualname: str, args: Tuple):
        self.qualname, self.args, self.state = qualname, args, None

    def __setstate__(self, state):
        self.state = state


def _short_repr(args: Tuple) -> str:
    text = repr(args)
    return text if len(text) <= 80 else text[:77] + "...)"


def _check_view(storage: torch.Tensor, offset, size, stride) -> None:
    """A tensor may only view elements its storage holds, each once at most in all (no stride-0 blow-up), and no
    more than MAX_TENSOR_BYTES: checked before anything is allocated from the declared shape."""
    if not (isinstance(offset, int) and all(isinstance(v, int) for v in (*size, *stride)) and len(size) == len(stride)):
        raise CheckpointError("a tensor declares a malformed shape")
    if offset < 0 or any(v < 0 for v in (*size, *stride)):
        raise CheckpointError(f"a tensor declares a negative size, stride or offset: {tuple(size)}")
    numel = math.prod(size)
    if numel == 0:
        return
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if extent > storage.numel() or numel > storage.numel():
        raise CheckpointError(f"a tensor declares shape {tuple(size)} (stride {tuple(stride)}), more than the "
                              f"{storage.numel()} elements its storage holds in the file")
    if numel * storage.element_size() > MAX_TENSOR_BYTES:
        raise CheckpointError(f"a tensor declares {numel * storage.element_size()} bytes (limit {MAX_TENSOR_BYTES})")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    _check_view(storage, storage_offset, tuple(size), tuple(stride))
    return storage.as_strided(tuple(size), tuple(stride), storage_offset)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _latin1_bytes(text: str, encoding: str) -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"refused: the checkpoint's pickle asks to call _codecs.encode with "
                                    f"{_short_repr((type(text).__name__, encoding))}; nothing was executed.")
    return text.encode("latin1")


def _empty_bytes() -> bytes:
    return b""


def _path_rebuilder(qualname: str, join):
    """A pickled ``pathlib`` path is its class called with its string parts; this rebuilds it as the joined string."""
    def rebuild(*parts) -> str:
        if not all(isinstance(part, str) for part in parts):
            raise UnsafeCheckpointError(f"refused: the checkpoint's pickle asks to call {qualname} with "
                                        f"{_short_repr(parts)}; nothing was executed.")
        return join(*parts) if parts else "."
    return rebuild


# pathlib's module is "pathlib" up to Python 3.12 and "pathlib._local" from 3.13 on.
_PATH_CLASSES = {
    (module, name): join
    for module in ("pathlib", "pathlib._local")
    for names, join in ((("Path", "PosixPath", "PurePath", "PurePosixPath"), posixpath.join),
                        (("WindowsPath", "PureWindowsPath"), ntpath.join))
    for name in names
}


_REAL_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset, ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_bytes,
    ("builtins", "bytes"): _empty_bytes, ("__builtin__", "bytes"): _empty_bytes,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, prefix: str, data: bytes):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix = archive, prefix
        self._placeholders: Dict[str, type] = {}
        self._storages: Dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str):
        real = _REAL_GLOBALS.get((module, name))
        if real is not None:
            return real
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        qualname = f"{module}.{name}"
        if (module, name) in _PATH_CLASSES:
            return _path_rebuilder(qualname, _PATH_CLASSES[(module, name)])
        if (module, name) in _INERT_CALLS:
            return lambda *args: Call(qualname, args)
        cls = self._placeholders.get(qualname)
        if cls is None:
            cls = _PlaceholderMeta(name, (Placeholder,), {"qualname": qualname, "__module__": __name__})
            self._placeholders[qualname] = cls
        return cls

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise CheckpointError(f"unsupported persistent id in checkpoint: {_short_repr(pid)}")
        _, storage_type, key, _location, numel = pid
        key = str(key)
        if key not in self._storages:
            raw = _read_stored(self._archive, f"{self._prefix}data/{key}")
            dtype = storage_type.dtype
            if len(raw) < numel * dtype.itemsize:
                raise CheckpointError(f"tensor data record data/{key} is truncated")
            tensor = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            self._storages[key] = tensor[:numel]
        return self._storages[key]


def _read_stored(archive: zipfile.ZipFile, name: str) -> bytes:
    """An archive record; torch.save stores records uncompressed, so none can expand beyond the file's size."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CheckpointError(f"checkpoint is missing record {name}") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise CheckpointError(f"checkpoint record {name} is compressed; torch.save never writes that")
    if name.endswith("/byteorder") and info.file_size > MAX_BYTEORDER_BYTES:
        raise CheckpointError(f"checkpoint record {name} declares {info.file_size} bytes; it holds one word")
    return archive.read(info)


def _check_sizes(data: bytes) -> None:
    """Refuse lengths and memo indices larger than the pickle itself before the unpickler allocates them."""
    for opcode, arg, position in pickletools.genops(data):  # raises ValueError on impossible lengths
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and int(arg) > len(data):
            raise ValueError(f"memo index {arg} at byte {position} exceeds the pickle's size")


def safe_load(path: str) -> Any:
    """Unpickle ``data.pkl`` of the torch zip archive at ``path`` under the rules in this module's docstring."""
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except zipfile.BadZipFile:
        raise CheckpointError(f"{path} is not a torch zip archive (a .pt file written by torch.save >= 1.6)") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(f"{path} is a zip file but not a torch.save archive (no single */data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in archive.namelist() and _read_stored(archive, f"{prefix}byteorder") != b"little":
            raise CheckpointError(f"{path} was saved on a big-endian machine; not supported")
        data = _read_stored(archive, pickles[0])
        try:
            _check_sizes(data)
            return _RestrictedUnpickler(archive, prefix, data).load()
        except _MALFORMED as exc:
            raise CheckpointError(f"cannot read the pickle in {path}: {exc}") from None

"""The model firewall: what a TorchScript archive would run, read without running anything.

A TorchScript file is code. Before :func:`jitvision.model_file.load_model` hands a file to ``torch.jit.load``,
:func:`check_model` reads the zip archive itself (every record's size checked against a limit first), collects every
qualified name the serialized code refers to (``torch.conv2d``, ``ops.prim.NumToTensor``, ``torch.from_file``) and
every GLOBAL of its pickles, and refuses the file (ModelError, exit 3) when one of them is not on the allow-list of
pure tensor operators, ``model_allowlist.txt`` beside this module. The C++ core reads the same list (CMake turns it
into a header) and applies the same rules (native/core/src/firewall.cpp); docs/security.md has the threat model.

Regenerate the list from model files: ``python -m jitvision.firewall MODEL... [--write]``.
"""
import argparse
import contextlib
import os
import pickletools
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

from jitvision.errors import ModelError

ALLOWLIST_FILE = Path(__file__).with_name("model_allowlist.txt")
TRUST_ENV = "JITVISION_TRUST_MODEL"
PICKLE_PREFIX = "pickle:"
# Names the serialized code can start a qualified name with (TorchScript's importer resolves these globally).
ROOTS = ("torch", "ops", "math", "builtins", "CONSTANTS", "__torch__")
# The archive's own classes are scanned with the archive; custom C++ classes (TorchBind) are not ours to trust.
ARCHIVE_CLASS_PREFIX = "__torch__."
CUSTOM_CLASS_PREFIX = "__torch__.torch.classes"
# Size limits, checked on the declared sizes before anything is read (bytes).
LIMITS = {"code": 16 << 20, "pickle": 256 << 20, "extra": 1 << 20, "small": 4 << 10, "data": 16 << 30}
MAX_RECORDS = 100_000
MAX_TOTAL_BYTES = 32 << 30
MAX_NAMED = 5  # refused names a message lists


def read_allowlist(path: Optional[Path] = None) -> Set[str]:
    """The allow-list entries (default: ALLOWLIST_FILE): one per line, ``#`` starts a comment."""
    text = (path or ALLOWLIST_FILE).read_text()
    entries = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return {e for e in entries if e}


def record_category(name: str) -> str:
    """Which limit applies to an archive entry: code, pickle, extra, data or small (version, byteorder, ...)."""
    parts = name.split("/")
    if "code" in parts[:-1] and name.endswith(".py"):
        return "code"
    if name.endswith(".pkl") or name.endswith(".debug_pkl"):
        return "pickle"
    if len(parts) > 2 and parts[1] == "extra":
        return "extra"
    if len(parts) > 2 and parts[1] in ("data", "constants", "traced_inputs"):
        return "data"
    return "small"


def checked_entries(archive: zipfile.ZipFile, path: str) -> List[zipfile.ZipInfo]:
    """The archive's entries after the size checks: ModelError for duplicates, compressed data, sizes past a limit."""
    infos = archive.infolist()
    if len(infos) > MAX_RECORDS:
        raise ModelError(f"model file {path} has {len(infos)} records (limit {MAX_RECORDS})")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise ModelError(f"model file {path} has duplicate record names")
    total = 0
    for info in infos:
        category = record_category(info.filename)
        if info.file_size > LIMITS[category]:
            raise ModelError(f"model file {path}: record {info.filename} declares {info.file_size} bytes, over the "
                             f"{LIMITS[category]}-byte limit for {category} records")
        if category == "data" and info.compress_type != zipfile.ZIP_STORED:
            raise ModelError(f"model file {path}: tensor record {info.filename} is compressed (TorchScript stores "
                             "tensor data uncompressed)")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ModelError(f"model file {path} declares {total} bytes in all (limit {MAX_TOTAL_BYTES})")
    return infos


def read_record(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> bytes:
    """One record, never more than its category's limit however the archive lies about its size."""
    limit = LIMITS[record_category(info.filename)]
    with archive.open(info) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ModelError(f"model file {path}: record {info.filename} is larger than its {limit}-byte limit")
    return data


def _ident_start(c: str) -> bool:
    return c == "_" or "a" <= c <= "z" or "A" <= c <= "Z"


def _ident_char(c: str) -> bool:
    return _ident_start(c) or "0" <= c <= "9"


def _skip_string(text: str, i: int) -> int:
    """Index just past the string literal that starts at ``text[i]`` (single, double or triple quoted)."""
    quote = text[i] * 3 if text[i:i + 3] == text[i] * 3 else text[i]
    i += len(quote)
    while i < len(text) and not text.startswith(quote, i):
        i += 2 if text[i] == "\\" else 1
    return i + len(quote)


def _read_chain(text: str, i: int) -> Tuple[str, int]:
    """The dotted name starting at identifier ``text[i]`` (whitespace allowed around dots) and the index after it."""
    parts: List[str] = []
    while True:
        start = i
        while i < len(text) and _ident_char(text[i]):
            i += 1
        parts.append(text[start:i])
        j = i
        while j < len(text) and text[j] in " \t\r\n\\":
            j += 1
        if j >= len(text) or text[j] != ".":
            return ".".join(parts), i
        j += 1
        while j < len(text) and text[j] in " \t\r\n\\":
            j += 1
        if j >= len(text) or not _ident_start(text[j]):
            return ".".join(parts) + ".", j
        i = j


def code_names(text: str) -> Iterator[str]:
    """Every qualified name rooted at a global namespace (``torch``, ``ops``, ...) in TorchScript source."""
    i, after_dot = 0, False
    while i < len(text):
        c = text[i]
        if c == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif c in "\"'":
            i, after_dot = _skip_string(text, i), False
        elif _ident_start(c):
            start = i
            name, i = _read_chain(text, i)
            root = name.split(".", 1)[0]
            if not after_dot and root in ROOTS:
                yield name
            after_dot = text[start:i].rstrip().endswith(".")
        elif "0" <= c <= "9":
            while i < len(text) and (_ident_char(text[i]) or text[i] == "."):
                i += 1
            after_dot = False
        else:
            after_dot = c == "." or (after_dot and c in " \t\r\n\\")
            i += 1


def pickle_globals(data: bytes) -> Iterator[str]:
    """``pickle:module.name`` for every GLOBAL opcode; STACK_GLOBAL and malformed pickles are names never allowed."""
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL":
                yield PICKLE_PREFIX + ".".join(arg.split(" ", 1))
            elif opcode.name in ("STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"):
                yield PICKLE_PREFIX + opcode.name
    except (ValueError, UnicodeDecodeError):
        yield PICKLE_PREFIX + "<malformed pickle>"


def is_archive_class(name: str) -> bool:
    bare = name[len(PICKLE_PREFIX):] if name.startswith(PICKLE_PREFIX) else name
    return bare.startswith(ARCHIVE_CLASS_PREFIX) and not bare.startswith(CUSTOM_CLASS_PREFIX) or \
        bare.startswith("CONSTANTS.c")


def _check_header(path: str) -> None:
    """A zip archive from its first byte (torch.jit.load takes other formats, e.g. a flatbuffer, by their header)."""
    with open(path, "rb") as stream:
        head = stream.read(8)
    if head[:4] != b"PK\x03\x04" or head[4:8] == b"PTMF":
        raise ModelError(f"{path} is not a TorchScript file (not a zip archive)")


@contextlib.contextmanager
def _archive_errors(path: str):
    """Every way reading a hostile or broken archive can fail, as one ModelError line."""
    try:
        yield
    except FileNotFoundError:
        raise ModelError(f"model file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ModelError(f"model file {path} has TorchScript code that is not UTF-8 text") from None
    except (zipfile.BadZipFile, IsADirectoryError, EOFError, NotImplementedError, RuntimeError, ValueError,
            zlib.error) as exc:
        raise ModelError(f"{path} is not a readable TorchScript archive ({exc})") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None


def check_archive(path: str) -> List[str]:
    """The record names, after the header and size checks (nothing but the zip directory is read)."""
    with _archive_errors(path):
        _check_header(path)
        with zipfile.ZipFile(path) as archive:
            return [info.filename for info in checked_entries(archive, path)]


def used_names(path: str) -> Dict[str, str]:
    """Every name the archive's code and pickles use, with the first record that uses it (nothing is run)."""
    with _archive_errors(path):
        _check_header(path)
        found: Dict[str, str] = {}
        with zipfile.ZipFile(path) as archive:
            for info in checked_entries(archive, path):
                category = record_category(info.filename)
                if category not in ("code", "pickle"):
                    continue
                data = read_record(archive, info, path)
                names = code_names(data.decode("utf-8")) if category == "code" else pickle_globals(data)
                for name in names:
                    found.setdefault(name, info.filename)
        return found


def trusted(trust_model: bool) -> bool:
    return trust_model or os.environ.get(TRUST_ENV) == "1"


def add_trust_flag(parser: argparse.ArgumentParser) -> None:
    """The ``--trust-model`` flag of a command that loads models (jitvision.__main__ applies it)."""
    parser.add_argument("--trust-model", action="store_true",
                        help=f"load the model without the firewall check (its code may do anything; as {TRUST_ENV}=1)")


def trust_from_args(args: argparse.Namespace) -> None:
    """``--trust-model`` sets the environment variable, so every load in this process and its children trusts."""
    if getattr(args, "trust_model", False):
        os.environ[TRUST_ENV] = "1"


def check_model(path: str, trust_model: bool = False) -> None:
    """ModelError naming the names outside the allow-list and their records; trusted: the size checks only."""
    if trusted(trust_model):
        check_archive(path)
        print(f"jitvision: warning: model file {path} is loaded without the firewall check (trusted)", file=sys.stderr)
        return
    allowed = read_allowlist()
    refused = [f"{name} (in {record})" for name, record in sorted(used_names(path).items())
               if name not in allowed and not is_archive_class(name)]
    if refused:
        more = f" and {len(refused) - MAX_NAMED} more" if len(refused) > MAX_NAMED else ""
        raise ModelError(f"model file {path} uses what the allow-list of pure tensor operators lacks: "
                         f"{', '.join(refused[:MAX_NAMED])}{more}; refused ({TRUST_ENV}=1 or --trust-model loads it "
                         "anyway)")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jitvision.firewall",
                                     description="List the names model files use that the allow-list lacks; "
                                                 "--write adds them to " + ALLOWLIST_FILE.name)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--write", action="store_true", help="add the missing names to the allow-list file")
    args = parser.parse_args(argv)
    allowed = read_allowlist()
    missing = sorted({n for m in args.models for n in used_names(m) if n not in allowed and not is_archive_class(n)})
    print("\n".join(missing) if missing else "nothing missing")
    if args.write and missing:
        with ALLOWLIST_FILE.open("a") as out:
            out.write("".join(f"{n}\n" for n in missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())

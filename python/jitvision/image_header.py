"""Image dimensions read from a file's header before anything is decoded (the C++ native/io/image_header.hpp, same
formats and rules): a 30000x30000 PNG is a few kilobytes on disk and 2.7 GB once decoded."""
import re
import struct
from typing import Optional, Tuple

DEFAULT_MAX_PIXELS = 100_000_000  # the C++ app's --max-pixels default, like Pillow's decompression-bomb guard


def max_image_file_bytes(max_pixels: int) -> int:
    """The largest image file read for a pixel limit: 8 bytes per pixel plus 1 MiB of headers and metadata."""
    return max_pixels * 8 + (1 << 20)


def _uint(data: bytes, at: int, size: int, big: bool) -> Optional[int]:
    if at < 0 or at + size > len(data):
        return None
    return int.from_bytes(data[at:at + size], "big" if big else "little")


def _pair(w: Optional[int], h: Optional[int]) -> Optional[Tuple[int, int]]:
    return None if w is None or h is None else (w, h)


def _jpeg(data: bytes) -> Optional[Tuple[int, int]]:
    i = 2
    while i + 1 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
        elif marker in (0xD9, 0xDA):
            return None
        else:
            length = _uint(data, i + 2, 2, True)
            if length is None or length < 2:
                return None
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return _pair(_uint(data, i + 7, 2, True), _uint(data, i + 5, 2, True))
            i += 2 + length
    return None


def _bmp(data: bytes) -> Optional[Tuple[int, int]]:
    header = _uint(data, 14, 4, False)
    if header == 12:
        return _pair(_uint(data, 18, 2, False), _uint(data, 20, 2, False))
    if header is None or len(data) < 26:
        return None
    w, h = struct.unpack_from("<ii", data, 18)
    return abs(w), abs(h)


def _webp(data: bytes) -> Optional[Tuple[int, int]]:
    kind = data[12:16]
    if kind == b"VP8X":
        w, h = _uint(data, 24, 3, False), _uint(data, 27, 3, False)
        return None if w is None or h is None else (w + 1, h + 1)
    if kind == b"VP8L":
        bits = _uint(data, 21, 4, False)
        if bits is None or data[20] != 0x2F:
            return None
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = _uint(data, 26, 2, False), _uint(data, 28, 2, False)
        return None if w is None or h is None else (w & 0x3FFF, h & 0x3FFF)
    return None


def _pnm(data: bytes) -> Optional[Tuple[int, int]]:
    head = data[:4096]
    if head[1:2] == b"7":
        w, h = re.search(rb"\nWIDTH\s+(\d{1,12})", head), re.search(rb"\nHEIGHT\s+(\d{1,12})", head)
        return None if not w or not h else (int(w.group(1)), int(h.group(1)))
    numbers = re.match(rb"P[1-6]((?:\s|#[^\r\n]*)+)(\d{1,12})((?:\s|#[^\r\n]*)+)(\d{1,12})", head)
    return None if not numbers else (int(numbers.group(2)), int(numbers.group(4)))


def _tiff(data: bytes) -> Optional[Tuple[int, int]]:
    big = data[:1] == b"M"
    ifd = _uint(data, 4, 4, big)
    count = None if ifd is None else _uint(data, ifd, 2, big)
    if count is None:
        return None
    found = {}
    for entry in range(count):
        at = ifd + 2 + 12 * entry
        tag, kind = _uint(data, at, 2, big), _uint(data, at + 2, 2, big)
        if tag is None or kind is None:
            return None
        if tag in (256, 257):
            width = {3: 2, 4: 4}.get(kind)  # SHORT or LONG
            found[tag] = _uint(data, at + 8, width, big) if width else None
    return _pair(found.get(256), found.get(257))


def image_header_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) a PNG, JPEG, BMP, WebP, PNM (P1-P7) or TIFF header declares, told by its signature; None for
    other formats and for headers that cannot be parsed (the decoder then decides)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _pair(_uint(data, 16, 4, True), _uint(data, 20, 4, True)) if data[12:16] == b"IHDR" else None
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg(data)
    if data[:2] == b"BM":
        return _bmp(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if len(data) >= 3 and data[:1] == b"P" and data[1:2] in b"1234567" and data[2:3].isspace():
        return _pnm(data)
    if data[:4] in (b"II*\0", b"MM\0*"):
        return _tiff(data)
    return None

"""Look inside a MATLAB v5 file before scipy reads it: how far a variable really inflates, and whether
its data elements have a type scipy can index.

Two things in a v5 `.mat` would otherwise reach scipy unchecked:
- zlib: a variable may be stored compressed, and zlib shrinks a run of zeros about a thousand
  times (a 4 MB file can expand to 4 GB); scipy inflates what a variable's tags declare, and even
  to read a header it inflates a whole 128 KiB compressed block at once;
- a data element's type code: scipy's compiled reader looks the code up in a fixed table without a
  bounds check, so an unknown code (a corrupt file) crashes the process (SIGBUS/SIGSEGV).
This walks the top-level elements, parses each wanted variable's header (array flags, dimensions,
name) and the tags of its real and imaginary parts, and inflates compressed ones in bounded steps
(nothing kept) to check they expand to no more than their dimensions allow.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

from .recording import RecordingError

HEADER_BYTES = 128
MI_MATRIX, MI_COMPRESSED = 14, 15
NUMERIC_ELEMENT_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13})  # miINT8 ... miDOUBLE, miINT64, miUINT64
NUMERIC_CLASSES = range(6, 16)  # mxDOUBLE_CLASS ... mxUINT64_CLASS
COMPLEX_FLAG = 0x0800
MX_OPAQUE_CLASS = 17
HEAD_BYTES = 4096
READ_BYTES = 1 << 16
INFLATE_STEP = 1 << 20
BYTES_PER_ELEMENT = 16  # complex double, the widest numeric element
HEADER_SLACK = 65_536


class _Matrix:
    """What the first bytes of an miMATRIX say: name, dimensions, numeric class, and where its parts' tags sit."""

    def __init__(self, head: bytes, order: str) -> None:
        mdtype, _ = struct.unpack_from(order + "II", head, 0)
        self.is_matrix = mdtype == MI_MATRIX
        self.name, self.dims, self.numeric, self.is_complex, self.real_at = "", (), False, False, 0
        if not self.is_matrix:
            return
        # like scipy: the array flags' own tag is skipped unread, their first word is class and flags
        flags_word = struct.unpack_from(order + "I", head, 16)[0]
        if (flags_word & 0xFF) == MX_OPAQUE_CLASS:
            return  # no dimensions or name (a function workspace): not data this reader takes
        _, dims_bytes, pos = _sub_element(head, 24, order)
        _, name, pos = _sub_element(head, pos, order)
        self.name = name.decode("ascii", "replace")
        self.dims = tuple(max(d, 0) for d in struct.unpack(f"{order}{len(dims_bytes) // 4}i", dims_bytes[: len(dims_bytes) // 4 * 4]))
        self.numeric = (flags_word & 0xFF) in NUMERIC_CLASSES
        self.is_complex = bool(flags_word & COMPLEX_FLAG)
        self.real_at = pos


def _parse(head: bytes, order: str) -> _Matrix | None:
    try:
        return _Matrix(head, order)
    except (struct.error, IndexError):
        return None  # not enough bytes yet


def _element_type(tag: bytes, at: int, order: str) -> tuple[int, int]:
    """(type, offset of the next element) for the tag of a data element at offset `at`."""
    first = struct.unpack_from(order + "I", tag, 0)[0]
    if first >> 16:  # small data element: size and type in one word, data in the next four bytes
        return first & 0xFFFF, at + 8
    mdtype, size = struct.unpack_from(order + "II", tag, 0)
    return mdtype, at + 8 + size + (-size) % 8


def _check_part(tag: bytes, at: int, order: str, matrix: _Matrix, path: Path, part: str) -> int:
    mdtype, following = _element_type(tag, at, order)
    if mdtype not in NUMERIC_ELEMENT_TYPES:
        raise RecordingError(f"{path}: variable '{matrix.name}' has {part} data of unknown type {mdtype}: a corrupt file")
    return following


def check_variables(path: Path, names: set[str], budget: int) -> None:
    """Refuse the file if a variable in `names` (compressed or not) has data elements of an unknown type,
    declares more than `budget` bytes, or (compressed) inflates beyond what its dimensions allow."""
    with path.open("rb") as f:
        header = f.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES:
            raise RecordingError(f"{path}: not a MATLAB .mat file (shorter than its 128-byte header)")
        order = "<" if header[126:128] == b"IM" else ">"
        while True:
            tag = f.read(8)
            if len(tag) < 8:
                return
            mdtype, nbytes = struct.unpack(order + "II", tag)
            start = f.tell()
            if mdtype == MI_COMPRESSED:
                _check_compressed(f, nbytes, order, names, budget, path)
                f.seek(start + nbytes)
            else:
                _check_plain(f, tag, start, nbytes, order, names, path)
                f.seek(start + nbytes + (-nbytes) % 8)


def _check_declared(matrix: _Matrix, budget: int, path: Path) -> int:
    limit = BYTES_PER_ELEMENT * math.prod(matrix.dims) + HEADER_SLACK
    if limit > budget:
        raise RecordingError(f"{path}: variable '{matrix.name}' declares dimensions {matrix.dims}, more than memory allows here")
    return limit


def _check_plain(f, tag: bytes, start: int, nbytes: int, order: str, names: set[str], path: Path) -> None:
    """An uncompressed variable: its sizes are bounded by the file's own; only the part types matter."""
    matrix = _parse(tag + f.read(min(nbytes, HEAD_BYTES)), order)
    if matrix is None or not matrix.is_matrix or matrix.name not in names or not matrix.numeric:
        return  # not read by this reader, or refused by its class before scipy loads it

    def tag_at(offset: int) -> bytes:
        f.seek(start - 8 + offset)
        return f.read(8)

    real = tag_at(matrix.real_at)
    if len(real) < 8:
        return  # truncated: scipy says so
    imag_at = _check_part(real, matrix.real_at, order, matrix, path, "real")
    if matrix.is_complex:
        imag = tag_at(imag_at)
        if len(imag) == 8:
            _check_part(imag, imag_at, order, matrix, path, "imaginary")


class _Tap:
    """Collects the 8 bytes of a tag at offset `at` of an inflating stream, whichever chunks they fall in."""

    def __init__(self, at: int) -> None:
        self.at, self.tag = at, b""

    def feed(self, before: int, out: bytes) -> bool:
        """True once the tag is complete."""
        if len(self.tag) < 8 and before + len(out) > self.at + len(self.tag):
            self.tag += out[max(0, self.at + len(self.tag) - before) : max(0, self.at + 8 - before)]
        return len(self.tag) == 8


def _check_compressed(f, nbytes: int, order: str, names: set[str], budget: int, path: Path) -> None:
    inflater = zlib.decompressobj()
    left, head, total = nbytes, b"", 0
    matrix: _Matrix | None = None
    limit = 0
    taps: list[tuple[_Tap, str]] = []  # the real part's tag, then the imaginary part's
    while left > 0:
        data = f.read(min(READ_BYTES, left))
        if not data:
            return  # truncated: scipy will say so
        left -= len(data)
        while data:
            try:
                out = inflater.decompress(data, INFLATE_STEP)
            except zlib.error as e:
                raise RecordingError(f"{path}: not a readable MATLAB file (a compressed variable is corrupt: {e})") from None
            data = inflater.unconsumed_tail
            if not out:
                break
            before, total = total, total + len(out)
            chunks = [(before, out)]
            if matrix is None:
                head += out[: HEAD_BYTES - len(head)]
                matrix = _parse(head, order)
                if matrix is None:
                    continue
                if not matrix.is_matrix or matrix.name not in names or not matrix.numeric:
                    return  # not read by this reader, or refused by its class before scipy loads it
                limit = _check_declared(matrix, budget, path)
                taps.append((_Tap(matrix.real_at), "real"))
                chunks.insert(0, (0, head))  # the start of the stream, kept while the header was incomplete
            for chunk_start, chunk in chunks:
                while taps and taps[0][0].feed(chunk_start, chunk):
                    tap, part = taps.pop(0)
                    following = _check_part(tap.tag, tap.at, order, matrix, path, part)
                    if part == "real" and matrix.is_complex:
                        taps.append((_Tap(following), "imaginary"))
            if total > limit:
                raise RecordingError(
                    f"{path}: variable '{matrix.name}' inflates to more than {limit:,} bytes, more than its "
                    f"dimensions {matrix.dims} need: a corrupt or hostile file"
                )


def _sub_element(buf: bytes, pos: int, order: str) -> tuple[int, bytes, int]:
    first = struct.unpack_from(order + "I", buf, pos)[0]
    if first >> 16:  # small data element
        size, mdtype = first >> 16, first & 0xFFFF
        if pos + 4 + size > len(buf):
            raise IndexError
        return mdtype, buf[pos + 4 : pos + 4 + size], pos + 8
    mdtype, size = struct.unpack_from(order + "II", buf, pos)
    if pos + 8 + size > len(buf):
        raise IndexError
    return mdtype, buf[pos + 8 : pos + 8 + size], pos + 8 + size + (-size) % 8

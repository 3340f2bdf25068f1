"""Look inside a MATLAB v5 file before scipy reads it: how far its compressed variables really expand.

A v5 `.mat` may store each variable zlib-compressed, and zlib shrinks a run of zeros about a
thousand times: a 4 MB file can expand to 4 GB. scipy inflates what a variable's own tags declare,
so this walks the file's top-level elements, reads each compressed variable's name from its first
bytes, and inflates the variables that will be read (streaming, nothing kept) to check that they
expand to no more than their declared dimensions allow. It runs before scipy looks at the file at
all: scipy inflates a whole 128 KiB compressed block at once even to read a variable's header.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

from replay.recording import RecordingError

HEADER_BYTES = 128
MI_INT8, MI_MATRIX, MI_COMPRESSED = 1, 14, 15
READ_BYTES = 1 << 16
INFLATE_STEP = 1 << 20
BYTES_PER_ELEMENT = 16  # complex double, the widest numeric element
HEADER_SLACK = 65_536


def check_compressed_variables(path: Path, names: set[str], budget: int) -> None:
    """Refuse the file if a compressed variable in `names` inflates beyond what its dimensions allow
    (BYTES_PER_ELEMENT each, plus HEADER_SLACK), or declares more than `budget` bytes."""
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
                _check_one(f, nbytes, order, names, budget, path)
            f.seek(start + nbytes + ((-nbytes) % 8 if mdtype != MI_COMPRESSED else 0))


def _check_one(f, nbytes: int, order: str, names: set[str], budget: int, path: Path) -> None:
    inflater = zlib.decompressobj()
    left = nbytes
    head = b""
    name = None
    limit = 0
    total = 0
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
            total += len(out)
            if name is None:
                head += out[: 4096 - len(head)]
                parsed = _variable_header(head, order)
                if parsed is None:
                    continue
                name, dims = parsed
                if name not in names:
                    return  # not a variable this reader loads: scipy skips it
                limit = BYTES_PER_ELEMENT * math.prod(dims) + HEADER_SLACK
                if limit > budget:
                    raise RecordingError(f"{path}: variable '{name}' declares dimensions {dims}, more than memory allows here")
            if total > limit:
                raise RecordingError(
                    f"{path}: variable '{name}' inflates to more than {limit:,} bytes, more than its "
                    f"dimensions {dims} need: a corrupt or hostile file"
                )
            if not out:
                break


def _variable_header(head: bytes, order: str) -> tuple[str, tuple[int, ...]] | None:
    """Name and dimensions of an miMATRIX (array flags, dimensions, name), or None until enough bytes are in."""
    try:
        mdtype, _ = struct.unpack_from(order + "II", head, 0)
        if mdtype != MI_MATRIX:
            return "", ()
        _, _, pos = _sub_element(head, 8, order)  # array flags
        _, dims_bytes, pos = _sub_element(head, pos, order)
        _, name, _ = _sub_element(head, pos, order)
        dims = struct.unpack(f"{order}{len(dims_bytes) // 4}i", dims_bytes[: len(dims_bytes) // 4 * 4])
        return name.decode("ascii", "replace"), tuple(max(d, 0) for d in dims)
    except (struct.error, IndexError):
        return None if len(head) < 4096 else ("", ())


def _sub_element(buf: bytes, pos: int, order: str) -> tuple[int, bytes, int]:
    first = struct.unpack_from(order + "I", buf, pos)[0]
    if first >> 16:  # small data element: size and type in one word, data in the next four bytes
        size, mdtype = first >> 16, first & 0xFFFF
        if pos + 4 + size > len(buf):
            raise IndexError
        return mdtype, buf[pos + 4 : pos + 4 + size], pos + 8
    mdtype, size = struct.unpack_from(order + "II", buf, pos)
    if pos + 8 + size > len(buf):
        raise IndexError
    return mdtype, buf[pos + 8 : pos + 8 + size], pos + 8 + size + (-size) % 8

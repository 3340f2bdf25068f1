"""Look inside a MATLAB v5 file before scipy reads it: how far its compressed variables really expand.

A v5 `.mat` may store each variable zlib-compressed, and zlib shrinks a run of zeros about a
thousand times: a 4 MB file can expand to 4 GB. scipy inflates what a variable's own tags declare,
so this walks the file's top-level elements, reads each compressed variable's name from its first
bytes, and inflates the variables that will be read (streaming, nothing kept) to check that they
expand to no more than their declared dimensions allow.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from replay.recording import RecordingError

HEADER_BYTES = 128
MI_INT8, MI_MATRIX, MI_COMPRESSED = 1, 14, 15
READ_BYTES = 1 << 16
INFLATE_STEP = 1 << 20


def check_compressed_variables(path: Path, max_bytes: dict[str, int]) -> None:
    """Refuse the file if a compressed variable named in `max_bytes` inflates beyond its bound."""
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
                _check_one(f, nbytes, order, max_bytes, path)
            f.seek(start + nbytes + ((-nbytes) % 8 if mdtype != MI_COMPRESSED else 0))


def _check_one(f, nbytes: int, order: str, max_bytes: dict[str, int], path: Path) -> None:
    inflater = zlib.decompressobj()
    left = nbytes
    head = b""
    name = None
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
                name = _variable_name(head, order)
                if name is not None and name not in max_bytes:
                    return  # not a variable this reader loads: scipy skips it unread
            elif name in max_bytes and total > max_bytes[name]:
                raise RecordingError(
                    f"{path}: variable '{name}' inflates to more than {max_bytes[name]:,} bytes, more than its "
                    f"dimensions need: a corrupt or hostile file"
                )
            if not out:
                break


def _variable_name(head: bytes, order: str) -> str | None:
    """The name sub-element of an miMATRIX (after array flags and dimensions), once enough bytes are in."""
    try:
        mdtype, _ = struct.unpack_from(order + "II", head, 0)
        if mdtype != MI_MATRIX:
            return ""
        pos = 8
        for _ in range(2):  # array flags, dimensions
            _, _, pos = _sub_element(head, pos, order)
        _, name, _ = _sub_element(head, pos, order)
        return name.decode("ascii", "replace")
    except (struct.error, IndexError):
        return None if len(head) < 4096 else ""


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

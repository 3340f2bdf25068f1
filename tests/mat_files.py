"""MATLAB v5 files written byte by byte, so tests can make their tags say what a corrupt or hostile file says."""

import math


def sig_file(dims=(6, 100), data_bytes=None, real_type=9, imag_type=None, compress=True) -> bytes:
    """A MAT v5 file holding one miMATRIX 'sig' of zeros, written by hand so its tags can lie: the real
    part's data element declares `data_bytes` (default: what `dims` need) and has type `real_type`."""
    import struct
    import zlib

    n = 8 * math.prod(dims)
    data_bytes = n if data_bytes is None else data_bytes
    flags = 6 | (0x0800 if imag_type is not None else 0)  # mxDOUBLE_CLASS, complex flag
    body = struct.pack("<II", 6, 8) + struct.pack("<II", flags, 0)
    body += struct.pack("<II", 5, 8) + struct.pack("<ii", *dims)
    body += struct.pack("<HH", 1, 3) + b"sig\x00"  # small data element: type miINT8, 3 bytes: the name
    parts = [struct.pack("<II", real_type, data_bytes)]
    tail = b"" if imag_type is None else struct.pack("<II", imag_type, n) + bytes(n)
    matrix_tag = struct.pack("<II", 14, len(body) + 8 + data_bytes + len(tail))
    header = b"MATLAB 5.0 MAT-file".ljust(116) + b"\x00" * 8 + b"\x00\x01" + b"IM"
    if not compress:
        return header + matrix_tag + body + parts[0] + bytes(data_bytes) + tail
    deflater = zlib.compressobj(9)
    out = [deflater.compress(matrix_tag + body + parts[0])]
    chunk = bytes(1 << 20)
    for _ in range(data_bytes >> 20):
        out.append(deflater.compress(chunk))
    out += [deflater.compress(bytes(data_bytes & ((1 << 20) - 1)) + tail), deflater.flush()]
    compressed = b"".join(out)
    return header + struct.pack("<II", 15, len(compressed)) + compressed


# Found by coverage-guided fuzzing (atheris): a 'sig' whose array-flags tag is garbage (scipy skips it
# unread), flagged complex, with a real part of type 0: scipy's reader crashed on it (SIGSEGV).
FUZZ_CRASH_COMPLEX_TYPE0 = (
    b"MATLAB 5.0 MAT-file".ljust(46) + b"\xff\xff\xff\xff" + b" " * 66 + b"\x00" * 8 + b"\x00\x01IM"
    + bytes.fromhex("0e000000b8070000" "0600f70008000000" "0608000000000000" "0500000008000000" "0600000014000000" "0100030073696700")
    + b"\x00" * 21
)

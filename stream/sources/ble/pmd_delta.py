"""Polar's delta compression ("delta frames"), decoded the way Polar's SDK decodes it.

A compressed payload is one reference sample (every channel as a signed little-endian integer of
`ceil(resolution / 8)` bytes), then blocks `[bit width, sample count, packed deltas]`. Deltas are
two's-complement integers of `bit width` bits, packed LSB first, channel by channel within a sample;
each is added to the previous sample. As in the SDK:
- the reference is sign-extended at `resolution` bits, and samples are 32-bit integers (sums wrap);
- a block of width 0 carries no samples at all (its sample count is ignored);
- anything that does not fit (truncated reference, block header or block) spoils the whole frame.
One deliberate difference: a 1-bit delta of `1` is −1 (two's complement); the SDK's Android decoder
builds its sign mask from Int.MAX_VALUE and reads it as 2³¹−1.
"""

from __future__ import annotations

import numpy as np

from .errors import BleParseError

MAX_DELTA_BITS = 32  # the SDK's deltas are Kotlin Ints; wider ones cannot mean anything


def reference_bytes(channels: int, resolution_bits: int) -> int:
    return channels * ((resolution_bits + 7) // 8)


def decode_delta(payload: bytes, channels: int, resolution_bits: int) -> np.ndarray:
    """(n, channels) int64 holding 32-bit values: the reference sample, then one row per delta."""
    if channels < 1 or not 1 <= resolution_bits <= 32:
        raise BleParseError(f"delta frame: {channels} channels of {resolution_bits} bits cannot be decoded")
    width = (resolution_bits + 7) // 8
    ref_len = channels * width
    if len(payload) < ref_len:
        raise BleParseError(f"delta frame: {len(payload)} bytes, shorter than its reference sample ({ref_len})")
    reference = [_sign_extend_int(int.from_bytes(payload[k : k + width], "little"), resolution_bits) for k in range(0, ref_len, width)]
    steps = [np.array([reference], dtype=np.int64)]
    i = ref_len
    while i < len(payload):
        if i + 2 > len(payload):
            raise BleParseError(f"delta frame: block header truncated at payload byte {i}")
        bits, count = payload[i], payload[i + 1]
        if bits > MAX_DELTA_BITS:
            raise BleParseError(f"delta frame: delta width {bits} bits at payload byte {i} (at most {MAX_DELTA_BITS})")
        n_values = count * channels
        n_bytes = (n_values * bits + 7) // 8
        if i + 2 + n_bytes > len(payload):
            raise BleParseError(f"delta frame: block at payload byte {i} needs {n_bytes} bytes, {len(payload) - i - 2} left")
        if bits:  # a 0-bit block adds no samples (the SDK reads count × 0 bits: nothing)
            steps.append(unpack_signed_bits(payload[i + 2 : i + 2 + n_bytes], bits, n_values).reshape(count, channels))
        i += 2 + n_bytes
    return wrap_int32(np.cumsum(np.concatenate(steps), axis=0))


def unsigned_le(raw: bytes, width: int) -> np.ndarray:
    """Consecutive `width`-byte unsigned little-endian integers (width ≤ 4)."""
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width).astype(np.int64)
    value = np.zeros(len(b), dtype=np.int64)
    for k in range(width):
        value |= b[:, k] << (8 * k)
    return value


def signed_le(raw: bytes, width: int) -> np.ndarray:
    """Consecutive `width`-byte signed little-endian integers (width ≤ 4)."""
    return sign_extend(unsigned_le(raw, width), 8 * width)


def sign_extend(value: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement of the low `bits` bits: (v XOR sign) − sign."""
    sign = np.int64(1) << (bits - 1)
    return ((value & ((sign << 1) - 1)) ^ sign) - sign


def _sign_extend_int(value: int, bits: int) -> int:
    sign = 1 << (bits - 1)
    return ((value & ((sign << 1) - 1)) ^ sign) - sign


def wrap_int32(value: np.ndarray) -> np.ndarray:
    """Two's-complement 32-bit wrap-around, as Kotlin's Int arithmetic does (numpy's narrowing cast wraps)."""
    return value.astype(np.int32).astype(np.int64)


def unpack_signed_bits(block: bytes, bits: int, n_values: int) -> np.ndarray:
    """`n_values` two's-complement integers of `bits` bits each, packed LSB first."""
    if n_values == 0:
        return np.zeros(0, dtype=np.int64)
    flat = np.unpackbits(np.frombuffer(block, dtype=np.uint8), bitorder="little")[: n_values * bits]
    weights = np.left_shift(np.int64(1), np.arange(bits, dtype=np.int64))
    return sign_extend(flat.reshape(n_values, bits).astype(np.int64) @ weights, bits)

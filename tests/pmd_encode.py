"""Test-side PMD frame encoder, written independently of the parser (plain Python ints, no numpy bit tricks),
so round trips check the parser against a second reading of the format."""

from __future__ import annotations

import math


def header(measurement: int, timestamp_ns: int, frame_type: int) -> bytes:
    return bytes([measurement]) + timestamp_ns.to_bytes(8, "little") + bytes([frame_type])


def encode_raw(measurement: int, frame_type: int, timestamp_ns: int, samples: list[list[int]], width: int) -> bytes:
    body = b"".join(int(v).to_bytes(width, "little", signed=True) for row in samples for v in row)
    return header(measurement, timestamp_ns, frame_type) + body


def signed_bits_needed(values: list[int]) -> int:
    """Smallest two's-complement width holding every value (0 when all are zero)."""
    if all(v == 0 for v in values):
        return 0
    return max((v.bit_length() if v >= 0 else (~v).bit_length()) + 1 for v in values)


def pack_lsb_first(values: list[int], bits: int) -> bytes:
    acc, n = 0, 0
    for v in values:
        acc |= (v & ((1 << bits) - 1)) << n
        n += bits
    return acc.to_bytes(math.ceil(n / 8), "little") if n else b""


MIN_DELTA_BITS = 2  # the SDK reads a 0-bit block as no samples, and a 1-bit delta of -1 as 2**31 - 1


def encode_compressed(
    measurement: int, frame_type: int, timestamp_ns: int, samples: list[list[int]], width: int, block: int = 16, min_bits: int = 0
) -> bytes:
    """Reference sample raw (`width` bytes a value), then blocks of up to `block` samples of deltas at
    the smallest width that fits (never under 2 bits, so the SDK would decode the same samples)."""
    body = b"".join(int(v).to_bytes(width, "little", signed=True) for v in samples[0])
    deltas = [[b - a for a, b in zip(prev, cur)] for prev, cur in zip(samples, samples[1:])]
    for i in range(0, len(deltas), block):
        rows = deltas[i : i + block]
        flat = [v for row in rows for v in row]
        bits = max(signed_bits_needed(flat), min_bits, MIN_DELTA_BITS)
        body += bytes([bits, len(rows)]) + pack_lsb_first(flat, bits)
    return header(measurement, timestamp_ns, frame_type | 0x80) + body

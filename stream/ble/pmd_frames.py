"""Polar Measurement Data frames (the `PMD_DATA` notifications): raw and delta-compressed samples.

Layout: byte 0 measurement type; bytes 1-8 uint64 LE timestamp (ns since 2000-01-01, of the LAST sample);
byte 9 frame type, bit 7 set = delta-compressed; payload from byte 10.
- raw: samples back to back, channels × signed little-endian integers;
- compressed: one raw reference sample, then blocks `[bit width, sample count, packed deltas]`, deltas
  signed, LSB first, channel by channel within a sample, each added to the previous sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.ble.errors import BleParseError
from stream.ble.pmd_control import Measurement

HEADER_BYTES = 10
COMPRESSED_BIT = 0x80
MAX_DELTA_BITS = 32

# (measurement, frame type without the compression bit) -> (channels, bytes per channel value)
FRAME_LAYOUTS: dict[tuple[int, int], tuple[int, int]] = {
    (Measurement.PPG, 0): (4, 3),  # 3 PPG channels + ambient, 24-bit
    (Measurement.ACC, 0): (3, 1),  # x, y, z in mG, 8-bit
    (Measurement.ACC, 1): (3, 2),  # 16-bit
    (Measurement.ACC, 2): (3, 3),  # 24-bit
}


@dataclass(frozen=True)
class PmdFrame:
    measurement: int
    timestamp_ns: int  # sensor clock, of the last sample
    frame_type: int  # without the compression bit
    compressed: bool
    samples: np.ndarray  # (n, channels) int64, before the stream's FACTOR


def parse_frame(data: bytes) -> PmdFrame:
    """Any bytes in, a frame or BleParseError out (never another exception)."""
    data = bytes(data)
    if len(data) < HEADER_BYTES:
        raise BleParseError(f"PMD frame: {len(data)} bytes, the header alone is {HEADER_BYTES}")
    measurement = data[0]
    timestamp_ns = int.from_bytes(data[1:9], "little")
    compressed = bool(data[9] & COMPRESSED_BIT)
    frame_type = data[9] & ~COMPRESSED_BIT & 0xFF
    layout = FRAME_LAYOUTS.get((measurement, frame_type))
    if layout is None:
        raise BleParseError(f"PMD frame: unsupported measurement {measurement} frame type {frame_type}")
    channels, width = layout
    payload = data[HEADER_BYTES:]
    samples = _decode_compressed(payload, channels, width) if compressed else _decode_raw(payload, channels, width)
    return PmdFrame(measurement, timestamp_ns, frame_type, compressed, samples)


def signed_le(raw: bytes, width: int) -> np.ndarray:
    """Consecutive `width`-byte signed little-endian integers."""
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width).astype(np.int64)
    value = np.zeros(len(b), dtype=np.int64)
    for i in range(width):
        value |= b[:, i] << (8 * i)
    sign = np.int64(1) << (8 * width - 1)
    return np.where(value >= sign, value - (sign << 1), value)


def _decode_raw(payload: bytes, channels: int, width: int) -> np.ndarray:
    step = channels * width
    if not payload or len(payload) % step:
        raise BleParseError(f"PMD frame: raw payload of {len(payload)} bytes is not a whole number of {step}-byte samples")
    return signed_le(payload, width).reshape(-1, channels)


def _decode_compressed(payload: bytes, channels: int, width: int) -> np.ndarray:
    ref_bytes = channels * width
    if len(payload) < ref_bytes:
        raise BleParseError(f"PMD frame: compressed payload of {len(payload)} bytes is shorter than its reference sample ({ref_bytes})")
    reference = signed_le(payload[:ref_bytes], width)
    deltas = []
    i = ref_bytes
    while i < len(payload):
        if i + 2 > len(payload):
            raise BleParseError(f"PMD frame: delta block header truncated at byte {HEADER_BYTES + i}")
        bits, count = payload[i], payload[i + 1]
        if bits > MAX_DELTA_BITS:
            raise BleParseError(f"PMD frame: delta width {bits} bits at byte {HEADER_BYTES + i} (at most {MAX_DELTA_BITS})")
        n_values = count * channels
        n_bytes = (n_values * bits + 7) // 8
        block = payload[i + 2 : i + 2 + n_bytes]
        if len(block) < n_bytes:
            raise BleParseError(f"PMD frame: delta block at byte {HEADER_BYTES + i} needs {n_bytes} bytes, {len(block)} left")
        deltas.append(unpack_signed_bits(block, bits, n_values).reshape(count, channels))
        i += 2 + n_bytes
    if not deltas:
        return reference.reshape(1, channels)
    steps = np.concatenate([reference.reshape(1, channels)] + deltas)
    return np.cumsum(steps, axis=0)


def unpack_signed_bits(block: bytes, bits: int, n_values: int) -> np.ndarray:
    """`n_values` signed integers of `bits` bits each, packed LSB first."""
    if bits == 0 or n_values == 0:
        return np.zeros(n_values, dtype=np.int64)
    flat = np.unpackbits(np.frombuffer(block, dtype=np.uint8), bitorder="little")[: n_values * bits]
    weights = np.left_shift(np.int64(1), np.arange(bits, dtype=np.int64))
    value = flat.reshape(n_values, bits).astype(np.int64) @ weights
    sign = np.int64(1) << (bits - 1)
    return np.where(value >= sign, value - (sign << 1), value)

"""Polar Measurement Data frames (the `PMD_DATA` notifications), decoded as Polar's SDK decodes them.

Header: byte 0 measurement type; bytes 1-8 uint64 LE timestamp (ns since 2000-01-01, of the LAST
sample); byte 9 frame type, bit 7 set = delta-compressed (`stream/sources/ble/pmd_delta.py`); payload from
byte 10. Every PPG and ACC frame type the SDK decodes is decoded here, with the SDK's FACTOR rules:
compressed PPG type 0 is always scaled, compressed ACC type 0 is in G and scaled by FACTOR × 1000 to
mG, the other compressed types only when FACTOR ≠ 1, raw frames never. Scaling is done in float32 and
truncated toward zero, as Kotlin's `(x.toFloat() * factor).toInt()` does, so values match the SDK's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from .errors import BleParseError
from .pmd_control import Measurement, measurement_name
from .pmd_delta import decode_delta, signed_le, unsigned_le

HEADER_BYTES = 10
COMPRESSED_BIT = 0x80
MG_PER_G = 1000


class Factor(Enum):
    NEVER = "never"  # raw frames
    ALWAYS = "always"  # compressed PPG type 0
    UNLESS_ONE = "unless one"  # compressed PPG 7, 8, 10, 13 and ACC 1
    G_TO_MG = "G to mG"  # compressed ACC type 0: value × FACTOR × 1000


@dataclass(frozen=True)
class FrameLayout:
    name: str
    channels: int  # values per decoded sample
    bits: int  # bits per value on the wire (a delta frame's reference resolution)
    factor: Factor = Factor.NEVER
    scaled: int = 0  # the leading channels FACTOR applies to (status words are not scaled)
    signal: bool = True  # samples of a signal; False: side information (gains, operation mode, sport)
    raw_decoder: Callable[[bytes], np.ndarray] | None = None  # special raw layouts


def _gains(group: int) -> Callable[[bytes], np.ndarray]:
    """Raw PPG types 4/9 (group 12) and 14 (group 1): numInt bytes, then byte pairs whose low 3 bits are
    the gains of channel 1 and channel 2. One sample = [numInt…, gain1…, gain2…]."""
    size = 3 * group

    def decode(payload: bytes) -> np.ndarray:
        _whole(payload, size)
        b = np.frombuffer(payload, dtype=np.uint8).reshape(-1, size).astype(np.int64)
        pairs = b[:, group:] & 0x07
        return np.concatenate([b[:, :group], pairs[:, 0::2], pairs[:, 1::2]], axis=1)

    return decode


def _operation_mode(payload: bytes) -> np.ndarray:
    _whole(payload, 4)
    return unsigned_le(payload, 4).reshape(-1, 1)


def _sport_id(payload: bytes) -> np.ndarray:
    """Raw PPG type 6: the SDK reads one uint64 from the first 8 bytes, whatever follows."""
    if len(payload) < 8:
        raise BleParseError(f"PMD frame: sport id needs 8 bytes, {len(payload)} came")
    return np.frombuffer(payload[:8], dtype="<u8").view(np.int64).reshape(1, 1).copy()


_PPG, _ACC = int(Measurement.PPG), int(Measurement.ACC)

# (measurement, frame type without the compression bit, compressed) -> layout, as in the SDK's
# PpgData/AccData (Android) and, for PPG type 14, its iOS twin
FRAME_LAYOUTS: dict[tuple[int, int, bool], FrameLayout] = {
    (_PPG, 0, False): FrameLayout("PPG type 0: 3 PPG channels + ambient, 24-bit", 4, 24),
    (_PPG, 0, True): FrameLayout("PPG type 0: 3 PPG channels + ambient, 24-bit", 4, 24, Factor.ALWAYS, 4),
    (_PPG, 4, False): FrameLayout("PPG type 4: LED integration counts and gains", 36, 8, signal=False, raw_decoder=_gains(12)),
    (_PPG, 5, False): FrameLayout("PPG type 5: operation mode", 1, 32, signal=False, raw_decoder=_operation_mode),
    (_PPG, 6, False): FrameLayout("PPG type 6: sport id", 1, 64, signal=False, raw_decoder=_sport_id),
    (_PPG, 7, True): FrameLayout("PPG type 7: 16 PPG channels + status, 24-bit", 17, 24, Factor.UNLESS_ONE, 16),
    (_PPG, 8, True): FrameLayout("PPG type 8: 24 PPG channels + status, 24-bit", 25, 24, Factor.UNLESS_ONE, 24),
    (_PPG, 9, False): FrameLayout("PPG type 9: LED integration counts and gains", 36, 8, signal=False, raw_decoder=_gains(12)),
    (_PPG, 10, True): FrameLayout("PPG type 10: 8 green, 6 red, 6 infrared + status, 24-bit", 21, 24, Factor.UNLESS_ONE, 20),
    (_PPG, 13, True): FrameLayout("PPG type 13: 2 PPG channels + status, 24-bit", 3, 24, Factor.UNLESS_ONE, 2),
    (_PPG, 14, False): FrameLayout("PPG type 14: LED integration count and gains", 3, 8, signal=False, raw_decoder=_gains(1)),
    (_ACC, 0, False): FrameLayout("ACC type 0: x, y, z in mG, 8-bit", 3, 8),
    (_ACC, 1, False): FrameLayout("ACC type 1: x, y, z in mG, 16-bit", 3, 16),
    (_ACC, 2, False): FrameLayout("ACC type 2: x, y, z in mG, 24-bit", 3, 24),
    (_ACC, 0, True): FrameLayout("ACC type 0: x, y, z in G × FACTOR, 16-bit reference", 3, 16, Factor.G_TO_MG, 3),
    (_ACC, 1, True): FrameLayout("ACC type 1: x, y, z in mG, 16-bit", 3, 16, Factor.UNLESS_ONE, 3),
}

# the groups of signal channels per PPG layout, as the SDK names them
PPG_CHANNEL_ROLES: dict[int, dict[str, slice]] = {
    0: {"ppg": slice(0, 3), "ambient": slice(3, 4)},
    7: {"ppg": slice(0, 16), "status": slice(16, 17)},
    8: {"ppg": slice(0, 24), "status": slice(24, 25)},
    10: {"green": slice(0, 8), "red": slice(8, 14), "ir": slice(14, 20), "status": slice(20, 21)},
    13: {"ppg": slice(0, 2), "status": slice(2, 3)},
}


class UnknownFrameType(BleParseError):
    """A frame type no decoder here (nor Polar's SDK) knows: every frame of that stream will be one."""

    def __init__(self, measurement: int, frame_type: int, compressed: bool) -> None:
        how = "delta-compressed" if compressed else "raw"
        super().__init__(f"PMD frame: {measurement_name(measurement)} frame type {frame_type} ({how}) is not one Polar's SDK decodes")
        self.measurement = measurement
        self.frame_type = frame_type
        self.compressed = compressed


@dataclass(frozen=True)
class PmdFrameHeader:
    measurement: int
    timestamp_ns: int  # sensor clock, of the last sample
    frame_type: int  # without the compression bit
    compressed: bool
    payload: bytes


@dataclass(frozen=True)
class PmdFrame:
    measurement: int
    timestamp_ns: int
    frame_type: int
    compressed: bool
    layout: FrameLayout
    samples: np.ndarray  # (n, channels) int64, in the SDK's units (FACTOR applied by its rules)


def parse_frame_header(data: bytes) -> PmdFrameHeader:
    data = bytes(data)
    if len(data) < HEADER_BYTES:
        raise BleParseError(f"PMD frame: {len(data)} bytes, the header alone is {HEADER_BYTES}")
    return PmdFrameHeader(
        measurement=data[0],
        timestamp_ns=int.from_bytes(data[1:9], "little"),
        frame_type=data[9] & ~COMPRESSED_BIT & 0xFF,
        compressed=bool(data[9] & COMPRESSED_BIT),
        payload=data[HEADER_BYTES:],
    )


def frame_layout(measurement: int, frame_type: int, compressed: bool) -> FrameLayout:
    layout = FRAME_LAYOUTS.get((measurement, frame_type, compressed))
    if layout is None:
        raise UnknownFrameType(measurement, frame_type, compressed)
    return layout


def decode_frame(data: bytes, factor: float = 1.0) -> PmdFrame:
    """Any bytes in, a frame or BleParseError out (never another exception). `factor`: the stream's
    FACTOR from the start answer, applied by the SDK's rules for this frame type."""
    header = parse_frame_header(data)
    layout = frame_layout(header.measurement, header.frame_type, header.compressed)
    if header.compressed:
        samples = decode_delta(header.payload, layout.channels, layout.bits)
    elif layout.raw_decoder is not None:
        samples = layout.raw_decoder(header.payload)
    else:
        samples = _decode_raw(header.payload, layout.channels, layout.bits // 8)
    return PmdFrame(header.measurement, header.timestamp_ns, header.frame_type, header.compressed, layout, apply_factor(samples, layout, factor))


def apply_factor(samples: np.ndarray, layout: FrameLayout, factor: float) -> np.ndarray:
    rule = layout.factor
    f = np.float32(factor)
    if rule is Factor.NEVER or (rule is Factor.UNLESS_ONE and f == np.float32(1.0)):
        return samples
    scale = f * np.float32(MG_PER_G) if rule is Factor.G_TO_MG else f
    out = samples.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        out[:, : layout.scaled] = kotlin_to_int(samples[:, : layout.scaled].astype(np.float32) * scale)
    return out


def kotlin_to_int(x: np.ndarray) -> np.ndarray:
    """Kotlin's Float.toInt(): truncation toward zero, NaN → 0, saturating at the Int range."""
    y = np.clip(x.astype(np.float64), -(2.0**31), 2.0**31 - 1)
    y[np.isnan(y)] = 0.0
    return y.astype(np.int64)  # the cast truncates toward zero


def _whole(payload: bytes, step: int) -> None:
    if not payload or len(payload) % step:
        raise BleParseError(f"PMD frame: raw payload of {len(payload)} bytes is not a whole number of {step}-byte samples")


def _decode_raw(payload: bytes, channels: int, width: int) -> np.ndarray:
    _whole(payload, channels * width)
    return signed_le(payload, width).reshape(-1, channels)

"""Heart Rate Service measurement (`0x2A37`): the HR a chest strap or watch computes itself.

Field order: flags, HR (uint8, or uint16 LE with flag bit 0), energy expended (uint16 kJ, bit 3),
RR intervals (bit 4: the rest of the payload, uint16 LE each, in 1/1024 s). Contact status is bit 1,
meaningful only when bit 2 (contact supported) is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BleParseError

HR_UINT16 = 0x01
CONTACT_DETECTED = 0x02
CONTACT_SUPPORTED = 0x04
ENERGY_PRESENT = 0x08
RR_PRESENT = 0x10
RR_UNITS_PER_S = 1024.0


@dataclass(frozen=True)
class HeartRateMeasurement:
    bpm: int
    contact: bool | None  # None: the sensor cannot tell
    energy_kj: int | None
    rr_s: tuple[float, ...]  # every RR interval in the notification, oldest first


def parse_heart_rate(data: bytes) -> HeartRateMeasurement:
    """Any bytes in, a measurement or BleParseError out."""
    data = bytes(data)
    if not data:
        raise BleParseError("heart rate measurement: empty notification")
    flags = data[0]
    i = 1
    hr_bytes = 2 if flags & HR_UINT16 else 1
    if len(data) < i + hr_bytes:
        raise BleParseError(f"heart rate measurement: flags {flags:#04x} promise a {hr_bytes}-byte HR, {len(data) - i} byte(s) follow")
    bpm = int.from_bytes(data[i : i + hr_bytes], "little")
    i += hr_bytes
    energy = None
    if flags & ENERGY_PRESENT:
        if len(data) < i + 2:
            raise BleParseError("heart rate measurement: energy expended flagged but missing")
        energy = int.from_bytes(data[i : i + 2], "little")
        i += 2
    rr: tuple[float, ...] = ()
    if flags & RR_PRESENT:
        rest = data[i:]
        if len(rest) % 2:
            raise BleParseError(f"heart rate measurement: {len(rest)} bytes of RR intervals (uint16 each)")
        rr = tuple(int.from_bytes(rest[j : j + 2], "little") / RR_UNITS_PER_S for j in range(0, len(rest), 2))
    contact = bool(flags & CONTACT_DETECTED) if flags & CONTACT_SUPPORTED else None
    return HeartRateMeasurement(bpm=bpm, contact=contact, energy_kj=energy, rr_s=rr)

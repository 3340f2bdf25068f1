"""Polar Measurement Data control point: feature bitmask, commands, responses and stream settings.

Pure functions over bytes (no radio): what is written to and read from `PMD_CONTROL`.
Command layout: `[op, measurement type, (setting id, count, value…)…]`; response layout:
`[0xF0, op, measurement type, error code, more frames, parameters…]`. The device also writes there on
its own: `[0x01, measurement types…]` says it stopped those online streams.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from .errors import BleParseError, DeviceError

FEATURES_HEADER = 0x0F
RESPONSE_HEADER = 0xF0
ONLINE_MEASUREMENT_STOPPED = 0x01  # device → host: these online streams were stopped by the device


class Measurement(IntEnum):
    ECG = 0
    PPG = 1
    ACC = 2
    PPI = 3
    GYRO = 5
    MAG = 6
    SDK_MODE = 9
    LOCATION = 10
    PRESSURE = 11
    TEMPERATURE = 12


class Op(IntEnum):
    GET_SETTINGS = 0x01
    START = 0x02
    STOP = 0x03


class Setting(IntEnum):
    SAMPLE_RATE = 0
    RESOLUTION = 1
    RANGE = 2
    RANGE_MILLIUNIT = 3
    CHANNELS = 4
    FACTOR = 5
    SECURITY = 6


# bytes per value, in settings responses; in commands every value is uint16 except CHANNELS (1 byte)
SETTING_VALUE_BYTES = {
    Setting.SAMPLE_RATE: 2,
    Setting.RESOLUTION: 2,
    Setting.RANGE: 2,
    Setting.RANGE_MILLIUNIT: 4,
    Setting.CHANNELS: 1,
    Setting.FACTOR: 4,
    Setting.SECURITY: 16,
}

ERROR_MESSAGES = {
    1: "the device does not know this command (invalid op code)",
    2: "the device does not know this measurement type",
    3: "the device does not support this measurement",
    4: "the command had an invalid length",
    5: "the device rejected a parameter of the command",
    6: "the measurement is already in the requested state",
    7: "the device does not support the requested resolution",
    8: "the device does not support the requested sample rate",
    9: "the device does not support the requested range",
    10: "the Bluetooth link's MTU is too small for streaming (Polar devices need 232 bytes, the OH1 140)",
    11: "the device does not support the requested number of channels",
    12: "the device is in a state where it cannot do this (e.g. already streaming to another app)",
    13: "the device is on its charger: take it off the charger to measure",
    14: "the device's storage is full",
}


def parse_features(data: bytes) -> frozenset[int]:
    """Measurement types the device offers, from a read of the control point (`0x0F` + bitmask)."""
    if len(data) < 2 or data[0] != FEATURES_HEADER:
        raise BleParseError(f"PMD features: expected 0x0F and a bitmask, got {bytes(data).hex(' ') or 'nothing'}")
    mask = int.from_bytes(bytes(data[1:]), "little")
    return frozenset(bit for bit in range(8 * (len(data) - 1)) if mask >> bit & 1)


def get_settings_command(measurement: int) -> bytes:
    return bytes([Op.GET_SETTINGS, measurement])


def stop_command(measurement: int) -> bytes:
    return bytes([Op.STOP, measurement])


def start_command(measurement: int, settings: dict[int, int]) -> bytes:
    """`[0x02, type, (id, 1, value)…]`, each value LE in its setting's width (CHANNELS one byte,
    RANGE_MILLIUNIT four, the rest two). FACTOR is the device's answer, never sent (as in the SDK)."""
    out = bytearray([Op.START, measurement])
    for setting_id, value in settings.items():
        if setting_id in (Setting.FACTOR, Setting.SECURITY):
            continue
        width = SETTING_VALUE_BYTES.get(setting_id, 2)
        if not 0 <= value < 1 << (8 * width):
            raise ValueError(f"setting {setting_id} value {value} does not fit in {width} byte(s)")
        out += bytes([setting_id, 1]) + int(value).to_bytes(width, "little")
    return bytes(out)


@dataclass(frozen=True)
class ControlResponse:
    op: int
    measurement: int
    error: int
    more_frames: bool
    params: bytes = field(default=b"")

    @property
    def ok(self) -> bool:
        return self.error == 0

    def error_message(self) -> str:
        what = ERROR_MESSAGES.get(self.error, f"unknown error code {self.error}")
        return f"{_op_name(self.op)} {measurement_name(self.measurement)}: {what}"


@dataclass(frozen=True)
class MeasurementStopped:
    """The device stopped these online streams on its own (e.g. taken off the wrist, low battery)."""

    measurements: tuple[int, ...]


def is_control_response(data: bytes) -> bool:
    return len(data) > 0 and data[0] == RESPONSE_HEADER


def parse_control_response(data: bytes) -> ControlResponse:
    """As the SDK: an error answer has no "more" flag and no parameters, whatever bytes follow."""
    if len(data) < 4 or data[0] != RESPONSE_HEADER:
        raise BleParseError(f"PMD response: expected 0xF0 op type error…, got {bytes(data).hex(' ') or 'nothing'}")
    if data[3] != 0:
        return ControlResponse(op=data[1], measurement=data[2], error=data[3], more_frames=False)
    more = bool(data[4]) if len(data) > 4 else False
    return ControlResponse(op=data[1], measurement=data[2], error=0, more_frames=more, params=bytes(data[5:]))


def parse_device_message(data: bytes) -> MeasurementStopped:
    """What the device writes on the control point unasked: `[0x01, types…]` (online streams stopped)."""
    data = bytes(data)
    if not data or data[0] != ONLINE_MEASUREMENT_STOPPED:
        raise BleParseError(f"PMD control point: unknown message from the device: {data.hex(' ') or 'nothing'}")
    return MeasurementStopped(tuple(data[1:]))


def raise_for_error(response: ControlResponse) -> None:
    """Device error codes (MTU, in charger, not supported…) become one clear DeviceError line."""
    if not response.ok:
        raise DeviceError(response.error_message(), code=response.error)


def parse_settings(params: bytes) -> dict[int, list[float]]:
    """`(id, count, value×count)…` from a settings or start response. FACTOR is float32 LE,
    RANGE_MILLIUNIT a signed int32 (as the SDK reads it), the rest unsigned. As in the SDK, one byte
    or less is no settings at all."""
    settings: dict[int, list[float]] = {}
    if len(params) <= 1:
        return settings
    i = 0
    while i < len(params):
        if i + 2 > len(params):
            raise BleParseError(f"PMD settings: truncated entry at byte {i} of {len(params)}")
        setting_id, count = params[i], params[i + 1]
        width = SETTING_VALUE_BYTES.get(setting_id)
        if width is None:
            break  # newer firmware: an id whose size we do not know ends what can be read; keep the rest

        end = i + 2 + count * width
        if end > len(params):
            raise BleParseError(f"PMD settings: setting {setting_id} needs {count * width} bytes, {len(params) - i - 2} left")
        raw = params[i + 2 : end]
        if setting_id == Setting.SECURITY:
            i = end
            continue
        if setting_id == Setting.FACTOR:
            values = [struct.unpack_from("<f", raw, j * 4)[0] for j in range(count)]
        elif setting_id == Setting.RANGE_MILLIUNIT:
            values = [float(v) for v in struct.unpack_from(f"<{count}i", raw)]
        else:
            values = [float(int.from_bytes(raw[j * width : (j + 1) * width], "little")) for j in range(count)]
        settings[setting_id] = values
        i = end
    return settings


def _op_name(op: int) -> str:
    try:
        return Op(op).name.lower().replace("_", " ")
    except ValueError:
        return f"op {op:#04x}"


def measurement_name(measurement: int) -> str:
    try:
        return Measurement(measurement).name
    except ValueError:
        return f"measurement {measurement}"

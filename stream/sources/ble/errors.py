"""The two ways a BLE conversation goes wrong: bytes that break the protocol, and a device that says no."""

from __future__ import annotations


class BleParseError(ValueError):
    """Bytes that do not follow the protocol; the only exception the parsers raise."""


class DeviceError(Exception):
    """The device, or the Bluetooth stack, refused: one line a user can act on. `code`: the PMD error
    code when the device answered one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

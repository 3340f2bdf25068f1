"""GATT identifiers of the services ppg-stream speaks."""

from __future__ import annotations


def _sig(short: int) -> str:
    """A Bluetooth SIG 16-bit UUID in its full 128-bit form (what bleak reports)."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


HEART_RATE_SERVICE = _sig(0x180D)
HEART_RATE_MEASUREMENT = _sig(0x2A37)

PMD_SERVICE = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"  # read, write, indicate
PMD_DATA = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"  # notify

PMD_MIN_MTU = 232  # Polar asks for a large ATT MTU; frames do not fit in the default 23

SERVICE_NAMES = {PMD_SERVICE: "polar-pmd", HEART_RATE_SERVICE: "heart-rate"}

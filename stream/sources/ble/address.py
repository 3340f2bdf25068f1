"""What `--ble ADDRESS` may be, checked before anything starts: a Bluetooth device address (six hex
bytes, `A0:9E:1A:12:34:56`, as Linux/BlueZ and Windows name devices) or the UUID macOS gives a device
instead (`--ble scan` prints whichever the platform uses). Anything else would only have been scanned for
until the scan timed out."""

from __future__ import annotations

import re

_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def is_ble_address(text: str) -> bool:
    return bool(_MAC.fullmatch(text) or _UUID.fullmatch(text))

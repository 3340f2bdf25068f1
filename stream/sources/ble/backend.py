"""The seam between ppg-stream and a Bluetooth stack: bleak in production, a scripted device in tests.

`BleClient` is the subset of `bleak.BleakClient` the project uses, so bleak's client fits as it is;
`BleBackend` scans, resolves an address to the stack's device object (connecting to that object, not to
a bare address, spares bleak a rescan), and makes one fresh client per connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import DeviceError


@dataclass(frozen=True)
class Advertisement:
    address: str
    name: str | None
    rssi: int | None
    service_uuids: tuple[str, ...]


class BleClient(Protocol):
    @property
    def is_connected(self) -> bool: ...

    @property
    def mtu_size(self) -> int: ...

    @property
    def services(self) -> Any: ...  # has get_service(uuid) -> service | None

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def read_gatt_char(self, uuid: str) -> bytearray: ...

    async def write_gatt_char(self, uuid: str, data: bytes, response: bool = ...) -> None: ...

    async def start_notify(self, uuid: str, callback: Callable[[Any, bytearray], None]) -> None: ...

    async def stop_notify(self, uuid: str) -> None: ...


class BleBackend(Protocol):
    transient_errors: tuple[type[BaseException], ...]  # failures worth a reconnect, not an exit
    time_scale: float  # device seconds per wall second: 1 for a real radio

    def now(self) -> float:
        """Host clock (seconds) that notifications are stamped with."""
        ...

    async def discover(self, timeout_s: float) -> list[Advertisement]: ...

    async def find(self, address: str, timeout_s: float) -> Any | None: ...

    def client(self, device: Any, disconnected: Callable[[], None]) -> BleClient: ...

    async def after_connect(self, client: BleClient) -> None:
        """Platform chores once connected (e.g. learning the negotiated MTU on BlueZ)."""
        ...


class BleakBackend:
    """bleak, imported on first use so replays never pay for it."""

    def __init__(self) -> None:
        from bleak.exc import BleakError

        self.transient_errors = (BleakError, OSError, EOFError, asyncio.TimeoutError)
        self.time_scale = 1.0

    def now(self) -> float:
        return time.perf_counter()

    async def discover(self, timeout_s: float) -> list[Advertisement]:
        from bleak import BleakScanner

        found = await _stack_call(BleakScanner.discover(timeout_s, return_adv=True))
        return [
            Advertisement(device.address, adv.local_name or device.name, adv.rssi, tuple(u.lower() for u in adv.service_uuids))
            for device, adv in found.values()
        ]

    async def find(self, address: str, timeout_s: float) -> Any | None:
        from bleak import BleakScanner

        return await _stack_call(BleakScanner.find_device_by_address(address, timeout=timeout_s))

    def client(self, device: Any, disconnected: Callable[[], None]) -> BleClient:
        from bleak import BleakClient

        return BleakClient(device, disconnected_callback=lambda _client: disconnected())

    async def after_connect(self, client: BleClient) -> None:
        # BlueZ reports the minimum MTU (23) until asked; bleak's documented way to ask is this method
        acquire = getattr(getattr(client, "_backend", None), "_acquire_mtu", None)
        if acquire is not None:
            try:
                await acquire()
            except Exception:  # noqa: BLE001 - best effort: the device answers "invalid MTU" if it matters
                pass


async def _stack_call(awaitable: Any) -> Any:
    """Turn "there is no Bluetooth here" (no adapter, no BlueZ/D-Bus, radio off) into one clear line."""
    from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError, BleakError

    try:
        return await awaitable
    except (BleakBluetoothNotAvailableError, FileNotFoundError, ConnectionRefusedError) as e:
        reason = e.args[0] if e.args else "no adapter"
        raise DeviceError(f"Bluetooth is not available on this machine ({e.__class__.__name__}: {reason}); is an adapter present and powered, and BlueZ running?") from None
    except BleakDBusError as e:
        raise DeviceError(f"Bluetooth stack error: {e.dbus_error}: {e.dbus_error_details or 'no details'}") from None
    except BleakError as e:
        raise DeviceError(f"Bluetooth scan failed: {e}") from None

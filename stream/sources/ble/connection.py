"""One wearable's connection lifecycle: find, connect, notify, notice the drop, reconnect with backoff.

Rules that keep a BLE stream dependable:
- notification callbacks only enqueue (no parsing, no awaiting: they run inside the stack's callback);
- every connection gets a fresh client (reusing one duplicates callbacks on some BlueZ versions);
- the stack's disconnected-callback enqueues a DISCONNECTED event, so the consumer sees it in order,
  after the data that came before it;
- reconnect attempts back off exponentially with jitter and never give up (Ctrl-C ends them);
- `online`/`offline` go to the status callbacks (the MQTT status topic).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from .backend import BleBackend, BleClient
from ...runtime.backoff import Backoff
from .errors import BleParseError, DeviceError

log = structlog.get_logger("ppg_stream.ble")

DATA = "data"
DISCONNECTED = "disconnected"
DEFAULT_SCAN_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0
TEARDOWN_TIMEOUT_S = 12.0  # stopping two streams: two requests of up to 5 s each


@dataclass(frozen=True)
class Event:
    kind: str  # DATA or DISCONNECTED
    tag: str  # which subscription (for DATA)
    payload: bytes
    host_s: float  # host clock when it was received (BleConnection.now: the device's time scale)
    wall_s: float  # time.perf_counter() when it was received (what latency is measured from)
    attempt: int = 0  # which connection attempt's client produced it


Setup = Callable[[BleClient], Awaitable[None]]


class BleConnection:
    def __init__(
        self,
        backend: BleBackend,
        address: str,
        backoff: Backoff = Backoff(),
        on_status: Callable[[str], None] | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.backend = backend
        self.address = address
        self.backoff = backoff
        self.on_status = on_status or (lambda status: None)
        self.now = clock or backend.now
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.client: BleClient | None = None
        self.device: Any = None
        self.connections = 0  # successful ones
        self.reconnect_attempts = 0
        self._attempt = 0
        self._live: int | None = None  # attempt number of the client whose callbacks count
        self._connected_attempt: int | None = None  # attempt number of the last successful connection
        self._closing = False

    async def find(self, timeout_s: float = DEFAULT_SCAN_TIMEOUT_S) -> None:
        self.device = await self.backend.find(self.address, timeout_s)
        if self.device is None:
            raise DeviceError(
                f"no BLE device {self.address} found within {timeout_s:g} s: is it on, in range, and not connected "
                "to another app? (`ppg-stream --ble scan` lists what is advertising)"
            )

    async def connect(self, setup: Setup) -> BleClient:
        """A fresh client, connected and set up; on failure it is disconnected again and the error raised."""
        if self.device is None:
            await self.find()
        self._attempt += 1
        attempt = self._attempt
        client = self.backend.client(self.device, lambda: self._on_disconnect(attempt))
        self._live = attempt
        try:
            await client.connect()
            await self.backend.after_connect(client)
            self.client = client
            await setup(client)
        except BaseException:
            self.client = None
            self._live = None  # its callbacks, the disconnect's included, no longer count
            await _quietly(client.disconnect())
            raise
        self.connections += 1
        self._connected_attempt = attempt
        self.on_status("online")
        return client

    def is_current(self, event: Event) -> bool:
        """False for a disconnect from an attempt that failed during set-up (it was retried already)."""
        return event.kind != DISCONNECTED or event.attempt == self._connected_attempt

    async def reconnect(self, setup: Setup) -> BleClient:
        """Try until connected: exponential backoff with jitter between attempts."""
        self.on_status("offline")
        old, self.client = self.client, None
        if old is not None:
            self._live = None
            await _quietly(old.disconnect())
        delays = self.backoff.delays(self._rng)
        while True:
            delay = next(delays)
            await self._sleep(delay)
            self.reconnect_attempts += 1
            try:
                client = await self.connect(setup)
            except (*self.backend.transient_errors, DeviceError, BleParseError) as e:
                self.device = None  # rescan next time: the stack may have forgotten the device object
                log.warning("reconnect failed: retrying", device=self.address, attempt=self.reconnect_attempts, error=f"{e.__class__.__name__}: {e}", next_in_s=round(delay * self.backoff.factor, 2))
                continue
            log.info("reconnected", device=self.address, attempts=self.reconnect_attempts)
            return client

    def subscriber(self, tag: str) -> Callable[[Any, bytearray], None]:
        """A notification callback that only enqueues (bytes copied: some stacks reuse the buffer)."""
        attempt = self._live

        def on_notify(_sender: Any, data: bytearray) -> None:
            if attempt == self._live:  # a stale client's late callback is ignored
                self.events.put_nowait(Event(DATA, tag, bytes(data), self.now(), time.perf_counter(), attempt))

        return on_notify

    def _on_disconnect(self, attempt: int) -> None:
        if attempt == self._live and not self._closing:
            self.client = None
            self._live = None
            self.events.put_nowait(Event(DISCONNECTED, "", b"", self.now(), time.perf_counter(), attempt))

    async def close(self, teardown: Setup | None = None) -> None:
        """Stop the measurement on the device (if still connected), then disconnect."""
        self._closing = True
        self._live = None
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if teardown is not None and client.is_connected:
                try:
                    async with asyncio.timeout(TEARDOWN_TIMEOUT_S):  # not wait_for: it may drop a cancel (3.11)
                        await teardown(client)
                except (TimeoutError, *self.backend.transient_errors, DeviceError, BleParseError) as e:
                    log.warning("could not stop the measurement on the device", device=self.address, error=f"{e.__class__.__name__}: {e}")
        finally:
            await _quietly(client.disconnect())
            self.on_status("offline")


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):  # not wait_for: it may drop a cancel (3.11)
            await awaitable
    except Exception:  # noqa: BLE001 - tearing down a link that may already be gone
        pass

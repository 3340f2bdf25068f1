"""Read a JetStream pull consumer as its messages are stored, with the raw protocol: the client
library's `fetch` waits to fill a batch (or for its timeout) once a request is lingering, which would
add up to the timeout to every window's latency at low rates; here each message is handed over the
moment it arrives."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import nats.errors

PULL_BATCH = 256
PULL_EXPIRES_S = 2.0
GONE_AFTER_S = 10.0  # no answer to pull requests for this long (elections take a few seconds): the consumer is gone


class PullFeed:
    """A pull consumer's messages as they are stored, without polling: one pull request of up to
    `batch` messages outstanding, renewed when it is used up, expires or is lost (a reconnect, a
    consumer leader moving), never asking for more than `room()` allows."""

    def __init__(self, nc, stream: str, consumer: str, on_message: Callable, batch: int = PULL_BATCH, expires_s: float = PULL_EXPIRES_S) -> None:
        self.nc = nc
        self.api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.on_message = on_message
        self.batch = batch
        self.expires_s = expires_s
        self.consumer_gone = False
        self._answered = time.monotonic()
        self._no_responders = False
        self._left = 0
        self._ended = asyncio.Event()
        self._stopped = False
        self._sub = None

    async def run(self, room: Callable[[], int], space: asyncio.Event) -> None:
        inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(inbox, cb=self._on)
        try:
            while not self._stopped:
                n = min(self.batch, room())
                if n <= 0:
                    space.clear()
                    await space.wait()
                    continue
                self._left = n
                self._ended.clear()
                request = json.dumps({"batch": n, "expires": int(self.expires_s * 1e9)}).encode()
                try:
                    await self.nc.publish(self.api, request, reply=inbox)
                except nats.errors.Error:
                    await asyncio.sleep(0.25)
                    continue
                try:
                    async with asyncio.timeout(self.expires_s + 1.0):
                        await self._ended.wait()
                except TimeoutError:
                    pass  # the request was lost (a reconnect, a consumer leader moving): ask again
                if self._no_responders:  # no consumer leader right now (an election): wait a little
                    self._no_responders = False
                    await asyncio.sleep(0.5)
                if time.monotonic() - self._answered > GONE_AFTER_S:
                    self.consumer_gone = True
        finally:
            await self.stop()

    async def stop(self) -> None:
        self._stopped = True
        self._ended.set()
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            except nats.errors.Error:
                pass

    async def _on(self, msg) -> None:
        if self._stopped:
            return
        if not msg.data and msg.headers and "Status" in msg.headers:
            status = msg.headers.get("Status")
            if status == "503":
                self._no_responders = True
            else:
                self._answered = time.monotonic()
            if status == "409" and "deleted" in (msg.headers.get("Description") or "").lower():
                self.consumer_gone = True  # another worker took the partition over
            if status != "100":  # 404/408: nothing more for this request; 409: cut short; 503: no leader
                self._ended.set()
            return
        self._answered = time.monotonic()
        self._left -= 1
        self.on_message(msg)
        if self._left <= 0:
            self._ended.set()

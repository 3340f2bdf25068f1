"""Publish HR messages over MQTT with aiomqtt: QoS 1, retained status + last will, reconnect with
backoff, and a bounded outbox so messages made while the broker is away are delivered when it returns.

Delivery is at-least-once: a message leaves the outbox only after the broker acknowledged it, so a
broker that dies mid-publish may see a message twice (subscribers can de-duplicate on `window`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections import deque

import aiomqtt
import structlog

from stream.backoff import Backoff
from stream.message import hr_topic, status_topic

log = structlog.get_logger("ppg_stream.mqtt")
# aiomqtt warns on every publish beyond 10 concurrent calls; we batch on purpose and log outages ourselves
_client_logger = logging.getLogger("ppg_stream.aiomqtt")
_client_logger.setLevel(logging.ERROR)

DEFAULT_OUTBOX = 10_000
BATCH = 256  # publishes in flight at once: aiomqtt costs ~0.25 ms per QoS-1 publish, so overlap them
RECONNECT = Backoff(start_s=0.2, factor=2.0, max_s=5.0, jitter=0.2)
PUBLISH_TIMEOUT_S = 3.0


class MqttPublisher:
    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        device: str,
        outbox_size: int = DEFAULT_OUTBOX,
        flush_timeout_s: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self.hr_topic = hr_topic(prefix, device)
        self.status_topic = status_topic(prefix, device)
        self.outbox: deque[dict] = deque()
        self.outbox_size = outbox_size
        self.flush_timeout_s = flush_timeout_s
        self.delivered = 0
        self.overflow = 0
        self.reconnects = 0
        self.connected = asyncio.Event()
        self.status = "online"  # the source's state: a BLE device that drops goes `offline` until it is back
        self._status_dirty = False
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")

    def set_status(self, status: str) -> None:
        """Publish `online`/`offline` (retained) as soon as the broker takes it; the last value wins."""
        if status != self.status:
            self.status = status
            self._status_dirty = True
            self._wake.set()

    def publish(self, messages: list[dict]) -> None:
        for message in messages:
            if len(self.outbox) >= self.outbox_size:
                self.outbox.popleft()
                self.overflow += 1
                if self.overflow == 1 or self.overflow % 1000 == 0:
                    log.warning("outbox full: dropping oldest messages", dropped=self.overflow, outbox=self.outbox_size)
            self.outbox.append(message)
        self._wake.set()

    async def close(self) -> int:
        """Deliver what is left (up to flush_timeout_s), publish `offline`, and return the undelivered count."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            return len(self.outbox)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self.flush_timeout_s)
        except asyncio.TimeoutError:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        return len(self.outbox)

    async def _run(self) -> None:
        delays = RECONNECT.delays()
        outage_logged = False
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
                    timeout=PUBLISH_TIMEOUT_S,
                    keepalive=30,
                    max_inflight_messages=BATCH,
                    logger=_client_logger,
                    # small JSON messages: without NODELAY, Nagle + delayed ACKs cap us at ~30 round trips/s
                    socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                ) as client:
                    await self._publish_status(client)
                    if outage_logged:
                        log.info("broker back: delivering buffered messages", broker=self.url, buffered=len(self.outbox))
                    outage_logged = False
                    delays = RECONNECT.delays()
                    self.connected.set()
                    await self._drain(client)
                    await client.publish(self.status_topic, b"offline", qos=1, retain=True)
                    return
            except aiomqtt.MqttError as e:
                self.connected.clear()
                self.reconnects += 1
                if not outage_logged:
                    log.warning("broker unreachable: buffering and retrying", broker=self.url, error=str(e), buffered=len(self.outbox))
                    outage_logged = True
                await asyncio.sleep(next(delays))

    async def _publish_status(self, client: aiomqtt.Client) -> None:
        """The current status, retained; if the broker does not take it, it is sent again after reconnecting."""
        self._status_dirty = False
        try:
            await client.publish(self.status_topic, self.status.encode(), qos=1, retain=True)
        except aiomqtt.MqttError:
            self._status_dirty = True
            raise

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish until closing and empty; a failed publish goes back to the front, then reconnect."""
        while True:
            if self._status_dirty:
                await self._publish_status(client)
                continue
            if not self.outbox:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self.outbox.popleft() for _ in range(min(BATCH, len(self.outbox)))]
            results = await asyncio.gather(
                *(client.publish(self.hr_topic, json.dumps(m), qos=1) for m in batch), return_exceptions=True
            )
            failed = [m for m, r in zip(batch, results) if isinstance(r, BaseException)]
            self.delivered += len(batch) - len(failed)
            if failed:
                self.outbox.extendleft(reversed(failed))
                error = next(r for r in results if isinstance(r, BaseException))
                raise error if isinstance(error, aiomqtt.MqttError) else aiomqtt.MqttError(str(error))

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
    """One connection for every device of the process: HR messages go to `<prefix>/<device>/hr`, each
    device's retained status to `<prefix>/<device>/status`, and the last will to `will_topic`."""

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        will_topic: str,
        outbox_size: int = DEFAULT_OUTBOX,
        flush_timeout_s: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self.prefix = prefix
        self.will_topic = will_topic
        self.outbox: deque[tuple[str, bytes]] = deque()
        self.outbox_size = outbox_size
        self.flush_timeout_s = flush_timeout_s
        self.delivered = 0
        self.overflow = 0
        self.reconnects = 0
        self.connected = asyncio.Event()
        self.statuses: dict[str, str] = {will_topic: "online"}  # retained status per topic, the last value wins
        self._pending: deque[tuple[str, str]] = deque([(will_topic, "online")])  # status changes not yet taken
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")

    def set_status(self, device: str, status: str) -> None:
        """Publish a device's `online`/`offline` (retained), in order, as soon as the broker takes it."""
        topic = status_topic(self.prefix, device)
        if self.statuses.get(topic, "offline") == status:
            return
        if status == "offline" and topic != self.will_topic:
            self.statuses.pop(topic, None)  # a departed device keeps nothing here but its pending last word
        else:
            self.statuses[topic] = status
        self._pending.append((topic, status))
        if len(self._pending) > 10_000:  # a long outage with devices coming and going: keep each topic's last word
            self._pending = deque(dict(self._pending).items())
        self._wake.set()

    def publish(self, messages: list[dict]) -> None:
        prefix = self.prefix
        self._enqueue([(hr_topic(prefix, m["device"]), json.dumps(m).encode()) for m in messages])

    def publish_payload(self, topic: str, payload: bytes) -> None:
        """Any payload (raw chunks of a gateway) through the same outbox and delivery guarantees."""
        self._enqueue([(topic, payload)])

    def _enqueue(self, items: list[tuple[str, bytes]]) -> None:
        for item in items:
            if len(self.outbox) >= self.outbox_size:
                self.outbox.popleft()
                self.overflow += 1
                if self.overflow == 1 or self.overflow % 1000 == 0:
                    log.warning("outbox full: dropping oldest messages", dropped=self.overflow, outbox=self.outbox_size)
            self.outbox.append(item)
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
                    will=aiomqtt.Will(self.will_topic, b"offline", qos=1, retain=True),
                    timeout=PUBLISH_TIMEOUT_S,
                    keepalive=30,
                    max_inflight_messages=BATCH,
                    logger=_client_logger,
                    # small JSON messages: without NODELAY, Nagle + delayed ACKs cap us at ~30 round trips/s
                    socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                ) as client:
                    self._pending.extend(self.statuses.items())  # a new session: say every status again
                    await self._publish_statuses(client)
                    if outage_logged:
                        log.info("broker back: delivering buffered messages", broker=self.url, buffered=len(self.outbox))
                    outage_logged = False
                    delays = RECONNECT.delays()
                    self.connected.set()
                    await self._drain(client)
                    await client.publish(self.will_topic, b"offline", qos=1, retain=True)
                    return
            except aiomqtt.MqttError as e:
                self.connected.clear()
                self.reconnects += 1
                if not outage_logged:
                    log.warning("broker unreachable: buffering and retrying", broker=self.url, error=str(e), buffered=len(self.outbox))
                    outage_logged = True
                await asyncio.sleep(next(delays))

    async def _publish_statuses(self, client: aiomqtt.Client) -> None:
        """Status changes in order, retained; one the broker does not take is sent again after reconnecting."""
        while self._pending:
            topic, status = self._pending[0]
            await client.publish(topic, status.encode(), qos=1, retain=True)
            self._pending.popleft()

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish until closing and empty; a failed publish goes back to the front, then reconnect."""
        while True:
            if self._pending:
                await self._publish_statuses(client)
                continue
            if not self.outbox:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self.outbox.popleft() for _ in range(min(BATCH, len(self.outbox)))]
            results = await asyncio.gather(
                *(client.publish(topic, payload, qos=1) for topic, payload in batch), return_exceptions=True
            )
            failed = [m for m, r in zip(batch, results) if isinstance(r, BaseException)]
            self.delivered += len(batch) - len(failed)
            if failed:
                self.outbox.extendleft(reversed(failed))
                error = next(r for r in results if isinstance(r, BaseException))
                raise error if isinstance(error, aiomqtt.MqttError) else aiomqtt.MqttError(str(error))

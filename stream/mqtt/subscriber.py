"""Receive messages on one topic filter (the raw-chunk ingest of `serve`: `<prefix>/+/raw`), reconnecting
with backoff and subscribing again after every reconnect.

`on_message(topic, payload, received)` runs inside the read that brought the message (`received` is
`time.perf_counter()` of that read), so it must be quick: decode and enqueue, never wait. QoS-1
messages are acknowledged after it returned (at-least-once). An exception from it is counted and
logged (rate-limited), never fatal to the connection. `on_messages(messages, received)` instead takes
all the messages of one read in one call (serve's raw intake: no call per message through this
layer); it handles each message on its own and returns those it failed on, (topic, exception) pairs,
counted and logged the same way.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import structlog

from ..runtime.backoff import Backoff
from ..runtime.tasks import cancel_and_wait
from .codec import SUBACK_FAILURE, Publish, encode_publish, encode_string, encode_subscribe
from .connection import MqttConnection, MqttConnectionError, MqttFatalError, connect
from .publisher import KEEPALIVE_S, RECONNECT
from .reconnecting import ReconnectingClient
from .settings import BrokerSettings

log = structlog.get_logger("ppg_stream.mqtt")

ERROR_LOG_INTERVAL_S = 10.0
MAX_PACKET_BYTES = 1 << 20
_SUBSCRIBE_PID = 1


class MqttSubscriber(ReconnectingClient):
    outage_message = "broker unreachable: retrying"
    back_message = "broker back: subscribed again"

    def __init__(
        self,
        settings: BrokerSettings,
        topic_filter: str,
        on_message: Callable[[str, bytes, float], None] | None,
        qos: int = 0,
        *,
        on_messages: Callable[[list[Publish], float], list[tuple[str, Exception]]] | None = None,
        keepalive_s: int = KEEPALIVE_S,
        reconnect: Backoff = RECONNECT,
        max_packet_bytes: int = MAX_PACKET_BYTES,
        client_id: str | None = None,
        clean_session: bool = True,
    ) -> None:
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        if (on_message is None) == (on_messages is None):
            raise ValueError("give on_message or on_messages")
        super().__init__(settings, reconnect)
        self.topic_filter = topic_filter
        self.on_message = on_message
        self.on_messages = on_messages
        self.qos = qos
        self.keepalive_s = keepalive_s
        self.max_packet_bytes = max_packet_bytes
        self.client_id = client_id or f"ppg-stream-sub-{uuid.uuid4().hex[:12]}"
        self.clean_session = clean_session  # False (a fixed client_id): the broker keeps the subscription and queues for us
        self.connected_since: float | None = None  # monotonic time of the current connection, None while down
        self.subscribed = asyncio.Event()
        self.received = 0
        self.callback_errors = 0
        self.oversized = 0
        self._last_error_log = float("-inf")
        self._suback: asyncio.Future[bytes] | None = None

    async def start(self) -> None:
        """Begin; waits for the first attempt, so refused credentials or a refused subscription raise here."""
        self._task = asyncio.create_task(self._run(), name="mqtt-subscriber")
        await self._first_attempt.wait()
        if self._fatal is not None:
            await self.close()
            raise self._fatal

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        conn = self._conn
        if conn is not None and conn.is_open:
            conn.disconnect()
        self._conn = None

    def send(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        """One QoS-0 publish on this connection (the dashboard clearing a device's retained status);
        False when not connected: nothing is queued for later."""
        conn = self._conn
        if conn is None or not conn.is_open or not self.subscribed.is_set():
            return False
        conn.write(encode_publish(encode_string(topic), payload, qos=0, retain=retain))
        return True

    def _on_publish(self, message: Publish, received: float) -> None:
        self.received += 1
        try:
            self.on_message(message.topic, message.payload, received)  # type: ignore[misc]
        except Exception as e:  # the consumer's bug must not stop every other device's data
            self._handler_failed(message.topic, e, 1)

    def _on_publishes(self, messages: list[Publish], received: float) -> None:
        self.received += len(messages)
        try:
            failed = self.on_messages(messages, received)  # type: ignore[misc]
        except Exception as e:  # a handler that let one escape: the read's messages count as failed
            self._handler_failed(messages[0].topic, e, len(messages))
            return
        if failed:
            topic, error = failed[-1]
            self._handler_failed(topic, error, len(failed))

    def _handler_failed(self, topic: str, e: Exception, count: int) -> None:
        self.callback_errors += count
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            log.error("message handler failed", topic=topic, error=f"{e.__class__.__name__}: {e}", errors=self.callback_errors)

    def _on_suback(self, pid: int, codes: bytes) -> None:
        if pid == _SUBSCRIBE_PID and self._suback is not None and not self._suback.done():
            self._suback.set_result(codes)

    def _on_oversized(self, kind: int) -> None:
        self.oversized += 1
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            log.warning("message over the size limit skipped", limit_bytes=self.max_packet_bytes, skipped=self.oversized)

    # --- connection lifecycle (the loop is ReconnectingClient's) ---
    async def _open(self) -> MqttConnection:
        delivery = {"on_publishes": self._on_publishes} if self.on_messages is not None else {"on_publish": self._on_publish}
        conn = await connect(self.settings, self.client_id, self.keepalive_s, clean_session=self.clean_session, **delivery,
                             on_suback=self._on_suback, on_oversized=self._on_oversized, max_packet_bytes=self.max_packet_bytes)
        self._conn = conn  # close() during the subscription handshake disconnects it
        self._suback = asyncio.get_running_loop().create_future()
        conn.write(encode_subscribe(_SUBSCRIBE_PID, self.topic_filter, self.qos))
        done, _ = await asyncio.wait([self._suback, conn.closed], timeout=10.0, return_when=asyncio.FIRST_COMPLETED)
        if self._suback not in done:
            conn.abort("no SUBACK")
            raise MqttConnectionError("the broker did not answer SUBSCRIBE")
        if self._suback.result()[:1] == bytes((SUBACK_FAILURE,)):
            conn.abort("refused")
            raise MqttFatalError(f"{self.settings.url} refused the subscription to {self.topic_filter!r} (not authorized?)")
        return conn

    def _up(self, conn: MqttConnection) -> None:
        self.connected_since = time.monotonic()
        self.subscribed.set()

    def _down(self) -> bool:
        self.connected_since = None
        self.subscribed.clear()
        return False

    def _back_fields(self) -> dict:
        return {"topic": self.topic_filter}

"""Receive messages on one topic filter (the raw-chunk ingest of `serve`: `<prefix>/+/raw`), reconnecting
with backoff and subscribing again after every reconnect.

`on_message(topic, payload, received)` runs inside the read that brought the message (`received` is
`time.perf_counter()` of that read), so it must be quick: decode and enqueue, never wait. QoS-1
messages are acknowledged after it returned (at-least-once). An exception from it is counted and
logged (rate-limited), never fatal to the connection.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import structlog

from stream.backoff import Backoff
from stream.tasks import cancel_and_wait
from stream.mqtt_codec import SUBACK_FAILURE, Publish, encode_subscribe
from stream.mqtt_connection import MqttConnection, MqttConnectionError, MqttFatalError, connect
from stream.mqtt_publisher import KEEPALIVE_S, RECONNECT, _describe
from stream.mqtt_settings import BrokerSettings

log = structlog.get_logger("ppg_stream.mqtt")

ERROR_LOG_INTERVAL_S = 10.0
MAX_PACKET_BYTES = 1 << 20
_SUBSCRIBE_PID = 1


class MqttSubscriber:
    def __init__(
        self,
        settings: BrokerSettings,
        topic_filter: str,
        on_message: Callable[[str, bytes, float], None],
        qos: int = 0,
        *,
        keepalive_s: int = KEEPALIVE_S,
        reconnect: Backoff = RECONNECT,
        max_packet_bytes: int = MAX_PACKET_BYTES,
        client_id: str | None = None,
    ) -> None:
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        self.settings = settings
        self.topic_filter = topic_filter
        self.on_message = on_message
        self.qos = qos
        self.keepalive_s = keepalive_s
        self.reconnect = reconnect
        self.max_packet_bytes = max_packet_bytes
        self.client_id = client_id or f"ppg-stream-sub-{uuid.uuid4().hex[:12]}"
        self.subscribed = asyncio.Event()
        self.received = 0
        self.callback_errors = 0
        self.oversized = 0
        self.reconnects = 0
        self._last_error_log = float("-inf")
        self._suback: asyncio.Future[bytes] | None = None
        self._conn: MqttConnection | None = None
        self._first_attempt = asyncio.Event()
        self._fatal: MqttFatalError | None = None
        self.failed = asyncio.Event()  # set when the broker refused us for good (see `fatal_error`): a service awaits it
        self._task: asyncio.Task | None = None

    @property
    def fatal_error(self) -> MqttFatalError | None:
        """Refused credentials or certificates, mid-run as at start: no more retries after it."""
        return self._fatal

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

    def _on_publish(self, message: Publish, received: float) -> None:
        self.received += 1
        try:
            self.on_message(message.topic, message.payload, received)
        except Exception as e:  # the consumer's bug must not stop every other device's data
            self.callback_errors += 1
            now = time.monotonic()
            if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
                self._last_error_log = now
                log.error("message handler failed", topic=message.topic, error=f"{e.__class__.__name__}: {e}", errors=self.callback_errors)

    def _on_suback(self, pid: int, codes: bytes) -> None:
        if pid == _SUBSCRIBE_PID and self._suback is not None and not self._suback.done():
            self._suback.set_result(codes)

    def _on_oversized(self, kind: int) -> None:
        self.oversized += 1
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            log.warning("message over the size limit skipped", limit_bytes=self.max_packet_bytes, skipped=self.oversized)

    async def _run(self) -> None:
        delays = self.reconnect.delays()
        outage_logged = False
        while True:
            try:
                conn = await connect(self.settings, self.client_id, self.keepalive_s, on_publish=self._on_publish,
                                     on_suback=self._on_suback, on_oversized=self._on_oversized, max_packet_bytes=self.max_packet_bytes)
                self._conn = conn
                self._suback = asyncio.get_running_loop().create_future()
                conn.write(encode_subscribe(_SUBSCRIBE_PID, self.topic_filter, self.qos))
                done, _ = await asyncio.wait([self._suback, conn.closed], timeout=10.0, return_when=asyncio.FIRST_COMPLETED)
                if self._suback not in done:
                    conn.abort("no SUBACK")
                    raise MqttConnectionError("the broker did not answer SUBSCRIBE")
                if self._suback.result()[:1] == bytes((SUBACK_FAILURE,)):
                    raise MqttFatalError(f"{self.settings.url} refused the subscription to {self.topic_filter!r} (not authorized?)")
            except MqttFatalError as e:
                if self._conn is not None:
                    self._conn.abort("refused")
                self._fatal = e
                self.failed.set()
                if self._first_attempt.is_set():  # mid-run; at start, start() raises it to the caller
                    log.error("MQTT broker refused us: not retrying", broker=self.settings.url, error=str(e))
                self._first_attempt.set()
                return
            except (OSError, asyncio.TimeoutError, MqttConnectionError) as e:
                self._first_attempt.set()
                self.reconnects += 1
                if not outage_logged:
                    log.warning("broker unreachable: retrying", broker=self.settings.url, error=_describe(e))
                    outage_logged = True
                await asyncio.sleep(next(delays))
                continue
            self.subscribed.set()
            self._first_attempt.set()
            if outage_logged:
                log.info("broker back: subscribed again", broker=self.settings.url, topic=self.topic_filter)
            outage_logged = False
            delays = self.reconnect.delays()  # reset only after the broker took the subscription
            reason = await conn.closed
            self.subscribed.clear()
            self._conn = None
            self.reconnects += 1
            log.warning("broker unreachable: retrying", broker=self.settings.url, error=_describe(reason))
            outage_logged = True
            await asyncio.sleep(next(delays))

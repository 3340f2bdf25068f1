"""Publish HR messages of any number of devices over MQTT: QoS 1, a retained status per device, retained
configuration topics, a last will, reconnection with backoff, and a bounded outbox so messages made
while the broker is away are delivered when it returns.

Every message `publish` accepts ends counted exactly once in the `DeliveryReport` of `close()`:
`delivered` (the broker acknowledged it), `dropped_overflow` (the outbox was full: the oldest goes),
or `undelivered` (still waiting or in flight, unacknowledged, when the flush timed out). A message
lives in exactly one place until then (the queue, or the in-flight table keyed by packet id) and
nothing of it is kept after its acknowledgement. Delivery is at-least-once: after a reconnect the
unacknowledged messages are sent again, so a subscriber may see one twice (de-duplicate on `window`).

Built on our own MQTT codec rather than a client library: see `benchmarks/bench_mqtt.py` for the
per-message cost of each (docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass

import structlog

from ..runtime.backoff import Backoff
from ..runtime.tasks import cancel_and_wait
from ..core.message import hr_topic, status_topic
from .codec import Will, encode_string, publish_head
from .connection import MqttConnection, connect
from .reconnecting import ReconnectingClient
from .settings import BrokerSettings

log = structlog.get_logger("ppg_stream.mqtt")

DEFAULT_OUTBOX = 10_000
MAX_INFLIGHT = 512  # unacknowledged QoS-1 publishes at once: enough to keep a loopback broker busy
RECONNECT = Backoff(start_s=0.2, factor=2.0, max_s=5.0, jitter=0.2)
ACK_TIMEOUT_S = 10.0  # nothing acknowledged for this long while messages are in flight: a wedged broker
DROP_LOG_INTERVAL_S = 10.0
KEEPALIVE_S = 30
_TOPIC_CACHE_MAX = 65_536


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int = 0
    dropped_overflow: int = 0
    undelivered: int = 0

    @property
    def accepted(self) -> int:
        return self.delivered + self.dropped_overflow + self.undelivered

    @property
    def lost(self) -> int:
        return self.dropped_overflow + self.undelivered

    def __add__(self, other: "DeliveryReport") -> "DeliveryReport":
        return DeliveryReport(self.delivered + other.delivered, self.dropped_overflow + other.dropped_overflow,
                              self.undelivered + other.undelivered)


def delivery_loss_line(report: DeliveryReport, outbox_size: int, flush_timeout_s: float) -> str:
    """What was lost and why, in one line (the CLI prints it after `ppg-stream: error: `)."""
    parts = []
    if report.dropped_overflow:
        parts.append(f"{report.dropped_overflow} dropped because the outbox was full (--outbox {outbox_size})")
    if report.undelivered:
        parts.append(f"{report.undelivered} not acknowledged by the MQTT broker within {flush_timeout_s:g} s")
    return f"{report.lost} of {report.accepted} messages were not delivered: {'; '.join(parts)}"


class _Retained:
    """An in-flight retained publish (a status or a configuration), kept until the broker acknowledges it."""

    __slots__ = ("topic", "payload")

    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic, self.payload = topic, payload


class MqttPublisher(ReconnectingClient):
    outage_message = "broker unreachable: buffering and retrying"
    back_message = "broker back: delivering buffered messages"

    def __init__(
        self,
        settings: BrokerSettings,
        prefix: str,
        will_topic: str,
        outbox_size: int = DEFAULT_OUTBOX,
        flush_timeout_s: float = 10.0,
        *,
        max_inflight: int = MAX_INFLIGHT,
        ack_timeout_s: float = ACK_TIMEOUT_S,
        keepalive_s: int = KEEPALIVE_S,
        reconnect: Backoff = RECONNECT,
        client_id: str | None = None,
    ) -> None:
        if outbox_size < 1:
            raise ValueError("outbox_size must be at least 1")
        super().__init__(settings, reconnect)
        self.prefix = prefix
        self.will_topic = will_topic
        self.outbox_size = outbox_size
        self.flush_timeout_s = flush_timeout_s
        self.max_inflight = max_inflight
        self.ack_timeout_s = ack_timeout_s
        self.keepalive_s = keepalive_s
        self.client_id = client_id or f"ppg-stream-{uuid.uuid4().hex[:12]}"
        self.connected = asyncio.Event()
        self.delivered = 0
        self.dropped_overflow = 0
        # HR messages: (fixed header + topic, payload, device) waiting; in flight by packet id (None once dropped)
        self._queue: deque[tuple[bytes, bytes, str]] = deque()
        self._inflight: dict[int, tuple[bytes, bytes, str] | _Retained | None] = {}
        self._pending = 0  # HR messages accepted and not yet delivered or dropped: the outbox's fill
        self._next_pid = 1
        # retained topics: what each status topic should say, and retained values not yet acknowledged
        self._status: dict[str, bytes] = {will_topic: b"online"}
        self._retained_unsent: dict[str, bytes] = {}
        self._hr_topics: dict[str, bytes] = {}
        self._dropped_since_log: Counter[str] = Counter()
        self._last_drop_log = float("-inf")
        self._acked_on_connection = False
        self._last_progress = 0.0
        self._pump_scheduled = False
        self._closing = False
        self._drained = asyncio.Event()
        self._watchdog: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return self.settings.url

    # --- what the pipeline calls ---
    async def start(self) -> None:
        """Begin connecting. Waits for the first attempt, so refused credentials stop the run before it starts;
        a broker that is merely away is retried while messages wait in the outbox."""
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")
        self._watchdog = asyncio.create_task(self._watch_acks(), name="mqtt-publisher-acks")
        await self._first_attempt.wait()
        if self._fatal is not None:
            await self._stop_tasks()
            raise self._fatal

    def publish(self, messages: list[dict]) -> None:
        """Queue HR messages (of any devices) for `<prefix>/<device>/hr`, QoS 1. Never blocks."""
        topics = self._hr_topics
        queue = self._queue
        for message in messages:
            device = message["device"]
            topic = topics.get(device)
            if topic is None:
                if len(topics) >= _TOPIC_CACHE_MAX:
                    topics.clear()
                topic = topics[device] = encode_string(hr_topic(self.prefix, device))
            payload = json.dumps(message).encode()
            if self._pending >= self.outbox_size:
                self._drop_oldest()
            queue.append((publish_head(topic, len(payload), qos=1), payload, device))
            self._pending += 1
        self._schedule_pump()

    def publish_payload(self, topic: str, payload: bytes, device: str = "") -> None:
        """Any payload on any topic (a gateway's raw chunks), QoS 1, through the same outbox and accounting."""
        if self._pending >= self.outbox_size:
            self._drop_oldest()
        self._queue.append((publish_head(encode_string(topic), len(payload), qos=1), bytes(payload), device or topic))
        self._pending += 1
        self._schedule_pump()

    def set_status(self, device: str, status: str) -> None:
        """`online`/`offline` on `<prefix>/<device>/status`, retained; the last value wins and is re-sent
        after every reconnect (the last will may have overwritten it)."""
        if status not in ("online", "offline"):
            raise ValueError(f"status must be 'online' or 'offline', not {status!r}")
        topic = status_topic(self.prefix, device)
        self._set_retained_status(topic, status.encode())

    def publish_retained(self, topic: str, payload: bytes) -> None:
        """A retained message (e.g. Home Assistant discovery), QoS 1, kept and re-sent across reconnects until
        the broker acknowledges it; an empty payload clears the topic. The latest value per topic wins."""
        self._retained_unsent[topic] = bytes(payload)
        self._schedule_pump()

    async def close(self) -> DeliveryReport:
        """Publish `offline` on every status topic, deliver what is left within `flush_timeout_s`, and report."""
        self._closing = True
        for topic in list(self._status):
            self._set_retained_status(topic, b"offline")
        self._check_drained()
        if self._task is not None and self._fatal is None:
            try:
                async with asyncio.timeout(self.flush_timeout_s):
                    await self._drained.wait()
            except TimeoutError:
                pass
        conn = self._conn
        if conn is not None and conn.is_open:
            if self._drained.is_set():
                conn.disconnect()  # clean: the broker discards the will, `offline` was acknowledged
            else:
                conn.abort("flush timed out")  # the will says `offline` for us
        await self._stop_tasks()
        self._log_drops(force=True)
        report = self.report()
        if self._fatal is not None:
            raise self._fatal
        return report

    @property
    def pending(self) -> int:
        """The outbox's fill: messages accepted and not yet delivered or dropped (queued or in flight)."""
        return self._pending

    def report(self) -> DeliveryReport:
        in_flight = sum(1 for entry in self._inflight.values() if isinstance(entry, tuple))
        return DeliveryReport(self.delivered, self.dropped_overflow, len(self._queue) + in_flight)

    # --- outbox ---
    def _drop_oldest(self) -> None:
        if self._queue:
            device = self._queue.popleft()[2]
        else:  # everything waiting is in flight (an outbox smaller than the window): forget the oldest
            pid = next(p for p, entry in self._inflight.items() if isinstance(entry, tuple))
            device = self._inflight[pid][2]  # type: ignore[index]
            self._inflight[pid] = None  # its acknowledgement, if it comes, counts for nothing
        self._pending -= 1
        self.dropped_overflow += 1
        self._dropped_since_log[device] += 1
        self._log_drops()

    def _log_drops(self, force: bool = False) -> None:
        """At most one warning per DROP_LOG_INTERVAL_S, naming the devices that lost most since the last."""
        if not self._dropped_since_log:
            return
        now = time.monotonic()
        if not force and now - self._last_drop_log < DROP_LOG_INTERVAL_S:
            return
        self._last_drop_log = now
        worst = dict(self._dropped_since_log.most_common(5))
        log.warning("outbox full: dropping oldest messages", dropped=self.dropped_overflow,
                    since_last=sum(self._dropped_since_log.values()), devices=worst, outbox=self.outbox_size)
        self._dropped_since_log.clear()

    def _set_retained_status(self, topic: str, payload: bytes) -> None:
        """Once per change: the value already asked for is queued, in flight or delivered (and a reconnect
        re-sends every status). A device whose status topic is also the last will's (a process publishing one
        device) would otherwise say `online` twice at the start and `offline` twice at the end."""
        if self._status.get(topic) == payload:
            return
        self._status[topic] = payload
        self._retained_unsent[topic] = payload
        self._schedule_pump()

    # --- sending ---
    def _schedule_pump(self) -> None:
        """Coalesce everything published in one event-loop turn into one socket write."""
        if not self._pump_scheduled and self._conn is not None:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        conn = self._conn
        if conn is None or not conn.is_open:
            return
        inflight, queue, retained = self._inflight, self._queue, self._retained_unsent
        room = self.max_inflight - len(inflight)
        if room <= 0:
            return
        if not inflight:
            self._last_progress = time.monotonic()
        out: list[bytes] = []
        pid = self._next_pid
        while room > 0 and (retained or queue):
            while pid in inflight:
                pid = pid + 1 if pid < 65535 else 1
            if retained:
                topic, payload = retained.popitem()
                inflight[pid] = _Retained(topic, payload)
                out += (publish_head(encode_string(topic), len(payload), qos=1, retain=True), pid.to_bytes(2, "big"), payload)
            else:
                entry = queue.popleft()
                inflight[pid] = entry
                out += (entry[0], pid.to_bytes(2, "big"), entry[1])
            pid = pid + 1 if pid < 65535 else 1
            room -= 1
        self._next_pid = pid
        if out:
            conn.write(b"".join(out))

    def _on_pubacks(self, pids: list[int]) -> None:
        inflight, status = self._inflight, self._status
        delivered = 0
        for pid in pids:
            entry = inflight.pop(pid, False)
            if type(entry) is tuple:
                delivered += 1
            elif entry is False or entry is None:
                continue  # not ours (a duplicate acknowledgement), or dropped by overflow while in flight
            elif entry.payload == b"offline" and status.get(entry.topic) == b"offline" and entry.topic != self.will_topic:
                del status[entry.topic]  # a device gone offline needs no re-sending: flat memory
        self.delivered += delivered
        self._pending -= delivered
        self._acked_on_connection = True
        self._last_progress = time.monotonic()
        self._schedule_pump()
        if self._closing:
            self._check_drained()

    def _check_drained(self) -> None:
        if not self._queue and not self._inflight and not self._retained_unsent:
            self._drained.set()

    def _requeue_inflight(self) -> None:
        """After a lost connection, unacknowledged messages go back to the front, in their order."""
        hr = [entry for entry in self._inflight.values() if type(entry) is tuple]
        for entry in self._inflight.values():
            if isinstance(entry, _Retained) and entry.topic not in self._retained_unsent:
                self._retained_unsent[entry.topic] = entry.payload
        self._inflight.clear()
        self._queue.extendleft(reversed(hr))

    # --- connection lifecycle (the loop is ReconnectingClient's) ---
    async def _open(self) -> MqttConnection:
        return await connect(self.settings, self.client_id, self.keepalive_s,
                             will=Will(self.will_topic, b"offline", qos=1, retain=True), on_pubacks=self._on_pubacks)

    def _up(self, conn: MqttConnection) -> None:
        self._acked_on_connection = False
        for topic, payload in self._status.items():  # the will may have said `offline` for us meanwhile
            self._retained_unsent.setdefault(topic, payload)
        self.connected.set()
        self._pump_scheduled = False
        self._schedule_pump()

    def _down(self) -> bool:
        self.connected.clear()
        self._requeue_inflight()
        return self._closing and self._drained.is_set()

    def _recovered(self) -> bool:
        """Only once the broker acknowledged something on it: one that accepts connections and then
        drops or ignores publishes keeps backing off."""
        return self._acked_on_connection

    def _on_fatal(self) -> None:
        self._drained.set()  # nothing more can be delivered: close() must not wait

    def _outage_fields(self) -> dict:
        return {"buffered": self._pending}

    _back_fields = _outage_fields

    async def _watch_acks(self) -> None:
        """A broker that takes publishes and never acknowledges them is an outage too: reconnect and resend."""
        interval = min(1.0, self.ack_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            conn = self._conn
            if conn is not None and self._inflight and time.monotonic() - self._last_progress > self.ack_timeout_s:
                conn.abort(f"the broker acknowledged nothing for {self.ack_timeout_s:g} s")

    async def _stop_tasks(self) -> None:
        await cancel_and_wait(self._task, self._watchdog)
        conn = self._conn
        if conn is not None and conn.is_open:
            conn.abort("closed")
        self._conn = None
        self.connected.clear()


"""Publish to JetStream with its acknowledgements: heart rate from workers, raw chunks from gateways.

`NatsHrPublisher` takes the runtime's batches (`publish(messages)`, never blocking the pipeline) and
publishes each message on `<prefix>.<device>.hr`, which the HR stream stores (R3 in a cluster); a
message counts as published when JetStream acknowledged it. Every `publish` call is a generation;
`wait_published(g)` returns once every message of generations ≤ g is stored, which is what the NATS
intake waits for before it acknowledges the raw chunks those messages came from. A message whose
acknowledgement does not come (a node lost, a leader election) is published again, so a window may
be stored twice (at-least-once, same `device` + `window`), never lost. Core NATS subscribers of
`<prefix>.*.hr` (and MQTT clients of nats-server on `<prefix>/+/hr`) see the messages as they are
stored. Device status goes out on `<prefix>.<device>.status` (core NATS, not stored: which worker
serves a device changes; the device does not go offline for that).

`NatsRawPublisher` is the gateway's: `publish_payload(topic, payload)` like the MQTT publisher's,
one device's chunks strictly in order (one unacknowledged chunk per device, retried until stored,
with a `Nats-Msg-Id` so a retry of a chunk that was in fact stored is dropped by the stream), many
devices in parallel. In order matters: the service drops a chunk older than one it already has.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections import deque

import nats.errors
import nats.js.errors
import structlog

from ..runtime.backoff import Backoff
from .subjects import hr_subject, status_subject, topic_to_subject
from ..runtime.throttle import Throttle

log = structlog.get_logger("ppg_stream.nats")

RETRY = Backoff(start_s=0.1, factor=2.0, max_s=2.0, jitter=0.2)
ACK_TIMEOUT_S = 3.0
_STREAM_SEQ = struct.Struct("<II")  # raw-chunk header bytes 4-11: stream id, sequence


class NatsHrPublisher:
    def __init__(self, nc, js, prefix: str, flush_timeout_s: float = 10.0, ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        self.nc = nc
        self.js = js
        self.prefix = prefix
        self.flush_timeout_s = flush_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.generation = 0  # publish() calls so far
        self.published_generation = 0  # every message of generations up to this one is stored
        self.delivered = 0
        self.republished = 0
        self._batches: deque[tuple[int, list[tuple[str, bytes]]]] = deque()
        self._statuses: deque[tuple[str, bytes]] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._advanced = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        self._trouble_log = Throttle(10.0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="nats-hr-publisher")

    def publish(self, messages: list[dict]) -> None:
        self.generation += 1
        prefix = self.prefix
        items = [(hr_subject(prefix, m["device"]), json.dumps(m).encode()) for m in messages]
        self._batches.append((self.generation, items))
        self._queued += len(items)
        self._wake.set()

    def set_status(self, device: str, status: str) -> None:
        self._statuses.append((status_subject(self.prefix, device), status.encode()))
        self._wake.set()

    @property
    def queued(self) -> int:
        """Messages not yet stored."""
        return self._queued

    async def wait_published(self, generation: int) -> None:
        while self.published_generation < generation:
            await self._advanced.wait()

    async def close(self) -> int:
        """Store what is left (up to flush_timeout_s); returns how many messages were not stored."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(self.flush_timeout_s):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                try:
                    await self._task
                except asyncio.CancelledError:
                    pass
        return self._queued

    async def _run(self) -> None:
        while True:
            if not self._batches and not self._statuses:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            while self._statuses:
                subject, payload = self._statuses.popleft()
                try:
                    await self.nc.publish(subject, payload)
                except nats.errors.Error:
                    pass  # a status is a hint, not a record
            if not self._batches:
                continue
            generation, items = self._batches[-1][0], [item for _, batch in self._batches for item in batch]
            self._batches.clear()
            await self._store(items)
            self._queued -= len(items)
            self.delivered += len(items)
            self.published_generation = generation
            advanced, self._advanced = self._advanced, asyncio.Event()
            advanced.set()

    async def _store(self, items: list[tuple[str, bytes]]) -> None:
        """Publish until every item has its acknowledgement (retrying only the ones without)."""
        delays = RETRY.delays()
        pending = items
        started = time.monotonic()
        while pending:
            failed, reason = await publish_acknowledged(self.js, pending, self.ack_timeout_s, time.monotonic() - started)
            if not failed:
                return
            self.republished += len(failed)
            if self._trouble_log.ready():
                log.warning("heart rate not acknowledged by JetStream: publishing again", messages=len(failed), reason=reason,
                            since_last_log=self._trouble_log.take())
            pending = failed
            await asyncio.sleep(next(delays))


async def publish_acknowledged(js, items: list[tuple[str, bytes] | tuple[str, bytes, dict]], timeout_s: float,
                               trouble_s: float = 0.0) -> tuple[list, str]:
    """Publish every item with its acknowledgement in flight at once; returns the items that did not
    get one within `timeout_s` (or were refused), and why (for the log; `trouble_s`: how long the
    sender has been failing, which decides what "no stream answered" most likely means)."""
    futures: list[asyncio.Future | None] = []
    reason = ""
    for item in items:
        try:
            futures.append(await js.publish_async(item[0], item[1], headers=item[2] if len(item) > 2 else None, wait_stall=timeout_s))
        except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError) as e:
            futures.append(None)
            reason = _why(e, trouble_s)
    live = [f for f in futures if f is not None]
    if live:
        _, not_done = await asyncio.wait(live, timeout=timeout_s)
        for f in not_done:
            f.cancel()
    failed = []
    for item, f in zip(items, futures):
        if f is None or f.cancelled() or f.exception() is not None:
            failed.append(item)
            if f is not None and f.cancelled():
                reason = f"no acknowledgement within {timeout_s:g} s"
            elif f is not None:
                reason = _why(f.exception(), trouble_s)
    return failed, reason


NO_STREAM_PATIENCE_S = 30.0  # "no stream answered" for this long is a missing stream or mapping, not an election


def _why(error: BaseException, trouble_s: float = 0.0) -> str:
    if isinstance(error, nats.js.errors.NoStreamResponseError):
        if trouble_s < NO_STREAM_PATIENCE_S:  # a cluster electing a stream leader answers so for seconds
            return f"no stream answered yet ({trouble_s:.0f} s): JetStream may be electing a stream leader; retrying"
        return (f"no stream answered for {trouble_s:.0f} s: none stores this subject (is the servers' mapping configured, "
                "and has a `serve --nats` worker created the streams?)")
    return str(error) or type(error).__name__


class _Count:
    """`len()` of what a publisher holds, for RawGateway's back-pressure check."""

    def __init__(self) -> None:
        self.n = 0

    def __len__(self) -> int:
        return self.n


class NatsRawPublisher:
    def __init__(self, js, outbox_size: int = 10_000, flush_timeout_s: float = 10.0, ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        self.js = js
        self.outbox = _Count()  # chunks queued or awaiting their acknowledgement
        self.outbox_size = outbox_size
        self.flush_timeout_s = flush_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.delivered = 0
        self.overflow = 0
        self.retries = 0
        self._queues: dict[str, deque[tuple[bytes, str]]] = {}
        self._senders: dict[str, asyncio.Task] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._trouble_log = Throttle(10.0)

    async def start(self) -> None:
        return None

    def publish(self, messages: list[dict]) -> None:  # a gateway forwards raw chunks only
        raise TypeError("NatsRawPublisher carries raw chunks (publish_payload), not HR messages")

    def publish_payload(self, topic: str, payload: bytes) -> None:
        """A raw chunk for `<prefix>/<device>/raw` (MQTT form), sent as `<prefix>.<device>.raw`."""
        subject = topic_to_subject(topic)
        if self.outbox.n >= self.outbox_size:
            self.overflow += 1
            if self.overflow == 1 or self.overflow % 1000 == 0:
                log.warning("NATS outbox full: dropping the newest raw chunks", dropped=self.overflow, outbox=self.outbox_size)
            return
        stream_id, seq = _STREAM_SEQ.unpack_from(payload, 4) if len(payload) >= 12 else (0, 0)
        queue = self._queues.setdefault(subject, deque())
        queue.append((payload, f"{subject}:{stream_id}:{seq}"))
        self.outbox.n += 1
        self._idle.clear()
        if subject not in self._senders:
            self._senders[subject] = asyncio.get_running_loop().create_task(self._send(subject, queue))

    async def _send(self, subject: str, queue: deque) -> None:
        """One device's chunks, one at a time, each until JetStream stored it."""
        try:
            delays = None
            trouble_since = None
            while queue:
                payload, msg_id = queue[0]
                trouble_s = 0.0 if trouble_since is None else time.monotonic() - trouble_since
                failed, reason = await publish_acknowledged(self.js, [(subject, payload, {"Nats-Msg-Id": msg_id})], self.ack_timeout_s, trouble_s)
                if failed:
                    trouble_since = trouble_since or time.monotonic()
                    self.retries += 1
                    if self._trouble_log.ready():
                        log.warning("raw chunk not acknowledged by JetStream: retrying", subject=subject, reason=reason,
                                    since_last_log=self._trouble_log.take())
                    delays = delays or RETRY.delays()
                    await asyncio.sleep(next(delays))
                    continue
                delays = trouble_since = None
                queue.popleft()
                self.outbox.n -= 1
                self.delivered += 1
        finally:
            self._senders.pop(subject, None)
            if not queue:
                self._queues.pop(subject, None)
            if not self._senders:
                self._idle.set()

    async def close(self) -> int:
        """Wait (up to flush_timeout_s) for every chunk to be stored; returns how many were not."""
        try:
            async with asyncio.timeout(self.flush_timeout_s):
                await self._idle.wait()
        except TimeoutError:
            for task in list(self._senders.values()):
                task.cancel()
            await asyncio.gather(*self._senders.values(), return_exceptions=True)
        return self.outbox.n

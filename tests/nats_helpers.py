"""Helpers for the NATS scale-out tests: `serve --nats` workers as subprocesses (JSON logs collected),
a fleet of gateways publishing through the project's own NATS raw publisher at a chosen pace, and
the heart-rate stream read back in full."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ppg_stream.stream.nats.publisher import NatsRawPublisher
from tests.serve_helpers import Service


@dataclass
class Worker(Service):
    """A `ppg-stream serve --nats` process."""

    ready_event = "worker joined"

    @property
    def name(self) -> str:
        joined = self.events("worker joined")
        return joined[0]["worker"] if joined else "?"

    def owned(self) -> list[int]:
        """Partitions as its latest acquire/hand-over/loss line says."""
        for e in reversed(self.logs):
            if "owned" in e:
                return e["owned"]
        return []


async def publish_fleet(urls: str, chunks: list[tuple[float, str, bytes]], speed: float | None, started: asyncio.Event | None = None) -> NatsRawPublisher:
    """Publish (stream time the chunk is complete, MQTT-form topic, payload) through the gateway's NATS
    publisher, each when its stream time comes (at `speed` x real time; None: all at once)."""
    nc = await nats.connect(urls.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.25, dont_randomize=True)
    publisher = NatsRawPublisher(nc.jetstream(timeout=5.0), outbox_size=1_000_000, flush_timeout_s=60.0)
    t0 = time.monotonic()
    if started is not None:
        started.set()
    try:
        for end, topic, payload in sorted(chunks, key=lambda c: c[0]):
            if speed is not None:
                delay = t0 + end / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            publisher.publish_payload(topic, payload)
        undelivered = await publisher.close()
        assert undelivered == 0, f"{undelivered} raw chunks were not stored"
    finally:
        await nc.close()
    return publisher


async def read_stream(url: str, stream: str, subject: str) -> list[tuple[dict, float]]:
    """Every message of `subject` in `stream`, with the time JetStream stored it (epoch seconds)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=10.0)
        info = await js.add_consumer(stream, ConsumerConfig(filter_subject=subject, ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL,
                                                            inactive_threshold=60.0))
        sub = await js.pull_subscribe_bind(info.name, stream)
        out = []
        remaining = info.num_pending
        while remaining > 0:
            msgs = await sub.fetch(min(500, remaining), timeout=5)
            for m in msgs:
                out.append((json.loads(m.data), m.metadata.timestamp.timestamp()))
            remaining -= len(msgs)
        return out
    finally:
        await nc.close()


async def eventually(check, timeout_s: float, every_s: float = 0.2):
    """Poll an async or plain check until it returns something truthy; the last value otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(every_s)

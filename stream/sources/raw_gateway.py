"""Gateway mode: forward a local source's raw chunks to `<prefix>/<device>/raw` for `ppg-stream serve`.

Each device gets a random stream id for this run and a sequence number per payload, so the service
can tell a restart (new stream id) from a redelivery (same sequence). A chunk's rate is its own: the
nominal rate when the samples sit on it, else the one their timestamps give, so a wearable that runs
slow is forwarded with the timing the service needs. Long chunks are cut to the payload's limit.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import numpy as np

from ..core.chunk import Chunk
from ..core.raw_chunk import MAX_SAMPLES, RawChunk, encode_raw_chunk
from ..runtime.source import Source

RAW_QOS = 1


def raw_topic(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/raw"


def chunk_rate(t: np.ndarray, nominal: float) -> float:
    """The rate that places these samples: nominal if they sit on it (within 1 µs), else their own."""
    n = len(t)
    if n < 2:
        return nominal
    if abs((t[-1] - t[0]) - (n - 1) / nominal) <= 1e-6:
        return nominal
    own = (n - 1) / float(t[-1] - t[0])
    return own if np.isfinite(own) and own > 0 else nominal


def outbox_depth(publisher: object) -> int:
    """What a publisher holds undelivered: the MQTT publisher's `pending`, the NATS one's `outbox`."""
    pending = getattr(publisher, "pending", None)
    return pending if pending is not None else len(getattr(publisher, "outbox", ()))


class RawGateway:
    def __init__(self, publisher: object, prefix: str) -> None:
        self.publisher = publisher
        self.prefix = prefix
        self._streams: dict[str, list[int]] = {}  # device -> [stream id, next sequence]
        self.chunks = 0

    def forward(self, device: str, groups: frozenset[str], chunk: Chunk, nominal_rate: float, sent: float = 0.0) -> None:
        """Publish one chunk (cut to the payload's limit). `sent`: this machine's Unix time now, so the
        service measures each window's age from when its data left here (payload version 2); 0 when the
        chunk is not being sent now (prepared ahead: version 1, the service counts from its arrival)."""
        stream = self._streams.setdefault(device, [secrets.randbits(32), 0])
        topic = raw_topic(self.prefix, device)
        for a in range(0, len(chunk.t), MAX_SAMPLES):
            t, x = chunk.t[a : a + MAX_SAMPLES], chunk.x[a : a + MAX_SAMPLES]
            raw = RawChunk(chunk.group, groups, stream[0], stream[1], chunk_rate(t, nominal_rate), float(t[0]), x.astype(np.float32), sent)
            self.publisher.publish_payload(topic, encode_raw_chunk(raw))
            stream[1] += 1
            self.chunks += 1

    def tap(self, source: Source, device: str) -> "TappedSource":
        """The same source, forwarding every chunk on its way."""
        return TappedSource(source, device, self)

    async def consume(self, source: "TappedSource") -> None:
        """Run a tapped source when nothing else consumes it (gateway only), never outrunning the
        publisher: a replay at --speed max waits while the outbox is half full."""
        async for _ in source.chunks():
            await self.wait_for_room()

    async def wait_for_room(self) -> None:
        size = getattr(self.publisher, "outbox_size", 0)
        while size and outbox_depth(self.publisher) > size // 2:
            await asyncio.sleep(0.005)

    def counts(self) -> dict:
        return {"raw_chunks_forwarded": self.chunks}


class TappedSource:
    def __init__(self, source: Source, device: str, gateway: RawGateway) -> None:
        self.source = source
        self.device = device
        self.gateway = gateway
        self.name = source.name
        self.rates = source.rates
        self.labels_bpm = source.labels_bpm
        self.speed = source.speed
        self._groups = frozenset(source.rates)
        self._real_time = source.speed == 1

    async def chunks(self) -> AsyncIterator[tuple[Chunk, float]]:
        async for chunk, arrival in self.source.chunks():
            if len(chunk.t):
                # stamped with the send time when the source runs in real time (a wearable, a replay at --speed 1):
                # then the service counts each window's age from it; faster or slower, the data's time does
                # not map to the clock, and the service counts from the arrival (payload version 1)
                self.gateway.forward(self.device, self._groups, chunk, self.source.rates[chunk.group], time.time() if self._real_time else 0.0)
            yield chunk, arrival

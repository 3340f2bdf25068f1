"""One partition of the raw-chunk stream into the runtime, while this worker holds its lease.

Taking a partition over (`start`): how far processing was acknowledged — the ack floor A of the
previous owners' durable consumers of the partition (replicated like the stream), or the progress
record (`nats_leases.Progress`) if that is further — says that every chunk up to A had its heart
rate stored. The old consumers are deleted and a new durable consumer, named for this ownership
term (so a late acknowledgement from a previous owner cannot touch it), starts `history_s` of
stream time before chunk A. Chunks up to A only rebuild each device's state (filters,
8 s ring, tracker): their windows were published already and are not published again. Chunks after
A are live: their windows are published, including those the previous owner may have published
without acknowledging (counted as possible duplicates), so no window is lost and a duplicate carries
the same device + window key.

Running: chunks are pulled as they are stored (`PullFeed`), each with a ticket, at most
`max_inflight` unacknowledged. The runtime calls a ticket done once the tick that processed its chunk
handed the messages to the publishers; the intake then waits for JetStream to acknowledge those heart
rate messages and acknowledges the raw chunks (ack-all up to the newest whose predecessors are all
done). Chunks that produce nothing (duplicates, malformed, refused) are done at once.

Handing over (`drain`): no more pulls; what is in flight is finished and acknowledged; the devices
leave the runtime without an `offline` (they are not offline, another worker serves them now).
Losing the lease (`abandon`): stop at once and acknowledge nothing more.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
import structlog
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ..core.message import is_device_id
from .pull import PullFeed
from .subjects import parse_partitioned, partition_filter
from ..runtime.throttle import Throttle

log = structlog.get_logger("ppg_stream.nats")

ACK_WAIT_S = 60.0  # redelivery to the same owner only if it sat on a chunk this long
SETUP_TIMEOUT_S = 10.0


class ChunkTicket:
    """Follows one raw chunk through the runtime (see ppg_stream.stream.runtime.pipeline.Ticket)."""

    __slots__ = ("owner", "reply", "seq", "rebuild", "finished", "generation")

    def __init__(self, owner: "PartitionIntake", reply: str, seq: int, rebuild: bool) -> None:
        self.owner = owner
        self.reply = reply
        self.seq = seq
        self.rebuild = rebuild
        self.finished = False
        self.generation = 0

    def done(self) -> None:
        self.finished = True
        self.generation = self.owner.publisher.generation
        self.owner._done.set()


@dataclass
class Takeover:
    partition: int
    ack_floor: int  # chunks up to this stream sequence were done by a previous owner
    maybe_duplicate_chunks: int  # delivered to a previous owner and not acknowledged
    start: str  # where the new consumer starts
    consumer: str


class PartitionIntake:
    def __init__(self, partition: int, nc, stream: str, prefix: str, ingest, publisher, lease_valid: Callable[[], bool],
                 history_s: float, max_inflight: int, progress=None) -> None:
        self.partition = partition
        self.nc = nc
        self.stream = stream
        self.prefix = prefix
        self.ingest = ingest
        self.runtime = ingest.runtime
        self.publisher = publisher
        self.lease_valid = lease_valid
        self.history_s = history_s
        self.max_inflight = max_inflight
        self.progress = progress
        self.devices: set[str] = set()
        self.inflight: deque[ChunkTicket] = deque()
        self.rebuild_through = 0
        self.consumer = ""
        self.chunks = 0
        self.rebuild_chunks = 0
        self.acked_seq = 0
        self.step = "read the previous consumers"
        self.step_ms: dict[str, float] = {}
        self.stopping = False
        self._acking = False  # an acknowledgement is on its way (waiting for the HR it covers to be stored)
        self._done = asyncio.Event()
        self._space = asyncio.Event()
        self._feed: PullFeed | None = None
        self._tasks: list[asyncio.Task] = []
        self._bad_log = Throttle(10.0)

    # ---- taking over ---------------------------------------------------------------------------
    async def start(self) -> Takeover:
        js = self.nc.jetstream(timeout=SETUP_TIMEOUT_S)  # consumer changes take a raft round in a cluster
        mine = f"p{self.partition}-"
        names = [name for name in await consumer_names(self.nc, self.stream) if name.startswith(mine)]
        found = await asyncio.gather(*(js.consumer_info(self.stream, name) for name in names), return_exceptions=True)
        previous = [c for c in found if not isinstance(c, BaseException)]
        recorded = await self.progress.get(self.partition) if self.progress is not None else 0
        self.step = "delete the previous consumers"
        times = {"read": time.monotonic()}
        ack_floor = max([recorded] + [c.ack_floor.stream_seq for c in previous])
        pending = sum(c.num_ack_pending for c in previous)
        for name in names:
            try:
                await js.delete_consumer(self.stream, name)
            except (nats.js.errors.Error, nats.errors.TimeoutError):
                pass  # gone already, or unreachable: a later takeover deletes it
        self.step = "create the consumer"
        times["delete"] = time.monotonic()
        self.consumer = f"{mine}{secrets.token_hex(4)}"
        config = ConsumerConfig(
            durable_name=self.consumer, filter_subject=partition_filter(self.prefix, self.partition), ack_policy=AckPolicy.ALL,
            ack_wait=ACK_WAIT_S, max_ack_pending=4 * self.max_inflight, max_deliver=-1, deliver_policy=DeliverPolicy.ALL,
        )
        start = "first stored chunk"
        if ack_floor > 0:
            try:
                at = await js.get_msg(self.stream, seq=ack_floor)
                since = at.time - datetime.timedelta(seconds=self.history_s)
                config.deliver_policy, config.opt_start_time = DeliverPolicy.BY_START_TIME, since
                start = f"{self.history_s:g} s before chunk {ack_floor}"
            except nats.js.errors.NotFoundError:
                log.warning("the last acknowledged chunk is no longer in the buffer: some chunks may have aged out unread",
                            partition=self.partition, ack_floor=ack_floor)
        times["history"] = time.monotonic()
        await js.add_consumer(self.stream, config)
        times["create"] = time.monotonic()
        self.step_ms = {k: round((times[k] - t) * 1000, 1) for (k, t) in zip(list(times)[1:], list(times.values())[:-1])}
        self.rebuild_through = ack_floor
        self.acked_seq = ack_floor
        return Takeover(self.partition, ack_floor, pending, start, self.consumer)

    # ---- running -------------------------------------------------------------------------------
    def run(self) -> None:
        self._feed = PullFeed(self.nc, self.stream, self.consumer, self._on_message)
        self._tasks = [
            asyncio.create_task(self._feed.run(lambda: self.max_inflight - len(self.inflight), self._space), name=f"pull-p{self.partition}"),
            asyncio.create_task(self._ack_loop(), name=f"ack-p{self.partition}"),
        ]

    @property
    def consumer_gone(self) -> bool:
        return self._feed is not None and self._feed.consumer_gone

    def _on_message(self, msg) -> None:
        if self.stopping:
            return  # not acknowledged: the next owner reads it again
        received = time.perf_counter()
        seq = _stream_seq(msg.reply)
        ticket = ChunkTicket(self, msg.reply, seq, seq <= self.rebuild_through)
        self.inflight.append(ticket)
        self.chunks += 1
        self.rebuild_chunks += ticket.rebuild
        parsed = parse_partitioned(self.prefix, msg.subject)
        if parsed is None or parsed[0] != self.partition or not is_device_id(parsed[1]):
            self.ingest.bad_topics += 1
            self.ingest.reject(msg.subject, "subject is not <prefix>.raw.<partition>.<device> with a valid device id")
            ticket.done()
            return
        device = parsed[1]
        self.devices.add(device)
        if not self.ingest.accept(device, msg.data, received, ticket, msg.subject):
            ticket.done()

    async def _ack_loop(self) -> None:
        while True:
            await self._done.wait()
            self._done.clear()
            last, generation = None, 0
            while self.inflight and self.inflight[0].finished:
                last = self.inflight.popleft()
                generation = max(generation, last.generation)
            if last is None:
                continue
            self._space.set()
            self._acking = True
            try:
                await self.publisher.wait_published(generation)
                if not self.lease_valid():
                    return  # not ours any more: the next owner redoes what we did not acknowledge
                await self.nc.publish(last.reply, b"+ACK")  # ack-all: this chunk and every one before it
                self.acked_seq = last.seq
            except nats.errors.Error:
                pass  # the next acknowledgement covers it
            finally:
                self._acking = False

    # ---- leaving -------------------------------------------------------------------------------
    async def drain(self, timeout_s: float) -> bool:
        """Hand over: finish and acknowledge what is in flight; True if all of it was acknowledged."""
        self.stopping = True
        if self._feed is not None:
            await self._feed.stop()
        deadline = time.monotonic() + timeout_s
        while (self.inflight or self._done.is_set() or self._acking) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        clean = not self.inflight
        if clean:  # let the last acknowledgement go out
            await asyncio.sleep(0.02)
            try:
                await self.nc.flush(timeout=2)
            except (nats.errors.Error, asyncio.TimeoutError):
                clean = False
        await self._stop_tasks()
        self._drop_devices("partition handed over")
        return clean

    async def abandon(self, reason: str) -> None:
        """The lease is gone: stop now, acknowledge nothing more."""
        self.stopping = True
        if self._feed is not None:
            await self._feed.stop()
        await self._stop_tasks()
        self._drop_devices(reason)

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _drop_devices(self, reason: str) -> None:
        for device in self.devices:
            self.runtime.drop_device(device, reason, announce=False)
        self.devices.clear()

    def prune(self) -> None:
        """Forget devices that left the runtime (idle timeout)."""
        table = self.runtime.table.devices
        self.devices = {d for d in self.devices if d in table}


async def consumer_names(nc, stream: str) -> list[str]:
    """The stream's consumer names, from the cluster's metadata (the full listing with states asks
    every consumer leader and can wait seconds for one that is busy or gone)."""
    names: list[str] = []
    while True:
        reply = await nc.request(f"$JS.API.CONSUMER.NAMES.{stream}", json.dumps({"offset": len(names)}).encode(), timeout=SETUP_TIMEOUT_S)
        page = json.loads(reply.data)
        if "error" in page:
            raise nats.js.errors.APIError.from_error(page["error"])
        names += page.get("consumers") or []
        if not page.get("consumers") or len(names) >= page.get("total", 0):
            return names


def _stream_seq(reply: str) -> int:
    """The stream sequence in a JetStream delivery's reply subject: `$JS.ACK.<stream>.<consumer>.
    <delivered>.<stream seq>.<consumer seq>.<time>.<pending>` (9 tokens), or with a domain and
    account hash before the stream (12 tokens, nats-server 2.10+)."""
    tokens = reply.split(".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])

"""A `serve --nats` worker: which partitions this process consumes, kept in step with the others.

Every `loop_s` the worker renews its heartbeat and its leases (every `renew_s`), reads the live
members, computes the assignment every member computes alike (`partition_assignment.assign`), hands
back the partitions assigned to another live worker (drain, then release: the new owner takes them
at once) and takes the free partitions assigned to it. A lease that could not be renewed in time is
given up locally before the server lets anyone else take it (see `nats_leases`). A worker that dies
holds nothing `lease_s` after its last renewal; the survivors then take its partitions at their next
loop, so a takeover takes about `lease_s + loop_s` plus the rebuild of the partition's devices.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import nats.errors
import nats.js.errors
import structlog

from .intake import PartitionIntake
from .leases import Leases, Progress
from .partition_assignment import assign
from ..runtime.throttle import Throttle

log = structlog.get_logger("ppg_stream.nats")

NATS_ERRORS = (nats.errors.Error, asyncio.TimeoutError)


@dataclass(frozen=True)
class WorkerConfig:
    partitions: int
    lease_s: float = 6.0
    renew_s: float = 1.0
    loop_s: float = 0.5
    join_grace_s: float = 1.0  # wait this long after announcing, so workers started together see each other
    history_s: float = 30.0
    max_inflight: int = 2000  # unacknowledged chunks per partition
    drain_timeout_s: float = 5.0


class NatsWorker:
    def __init__(self, nc, js, stream: str, prefix: str, ingest, publisher, leases: Leases, progress: Progress, config: WorkerConfig) -> None:
        self.nc = nc
        self.js = js
        self.stream = stream
        self.prefix = prefix
        self.ingest = ingest
        self.publisher = publisher
        self.leases = leases
        self.progress = progress
        self.config = config
        self.worker = leases.worker
        self.intakes: dict[int, PartitionIntake] = {}
        self.members: set[str] = {self.worker}
        self.acquired = 0
        self.handed_over = 0
        self.lost = 0
        self.maybe_duplicate_chunks = 0
        self._busy: set[int] = set()  # partitions being taken or handed over
        self._tasks: set[asyncio.Task] = set()
        self._next_renew = 0.0
        self._trouble_log = Throttle(10.0)

    def owned(self) -> list[int]:
        return sorted(self.intakes)

    async def run(self) -> None:
        """Until cancelled (then call `leave`)."""
        while True:
            try:
                await self.leases.heartbeat([])
                break
            except NATS_ERRORS as e:
                self._trouble("cannot announce this worker yet", e)
                await asyncio.sleep(self.config.loop_s)
        log.info("worker joined", worker=self.worker, partitions=self.config.partitions)
        await asyncio.sleep(self.config.join_grace_s)
        while True:
            try:
                await self._step()
            except NATS_ERRORS as e:
                self._trouble("NATS did not answer: retrying", e)
            await asyncio.sleep(self.config.loop_s)

    async def _step(self) -> None:
        await self._renew()
        for p, intake in list(self.intakes.items()):
            if p in self._busy:
                continue
            if intake.consumer_gone:  # its node went down (or another worker deleted it): take it over afresh
                await self._lose(p, "consumer gone", release=True)
            elif not self.leases.valid(p):
                await self._lose(p, "lease not renewed in time")
        self.members = await self.leases.members()
        plan = assign(self.config.partitions, self.members)
        for p in list(self.intakes):
            owner = plan.get(p)
            if owner != self.worker and p not in self._busy:
                self._busy.add(p)
                self._spawn(self._hand_over(p, owner))
        for p, owner in plan.items():
            if owner == self.worker and p not in self.intakes and p not in self._busy:
                if await self.leases.acquire(p):
                    self._busy.add(p)
                    self._spawn(self._take(p))

    async def _renew(self) -> None:
        now = time.monotonic()
        if now < self._next_renew:
            return
        self._next_renew = now + self.config.renew_s
        held = list(self.leases.held)
        records = [self.progress.put(p, intake.acked_seq) for p, intake in self.intakes.items()]
        results = await asyncio.gather(self.leases.heartbeat(self.owned()), *(self.leases.renew(p) for p in held), *records, return_exceptions=True)
        results = results[: 1 + len(held)] + [r for r in results[1 + len(held):] if isinstance(r, BaseException)]
        for p, ok in zip(held, results[1 : 1 + len(held)]):
            if ok is False:
                await self._lose(p, "lease taken by another worker")
            elif isinstance(ok, BaseException) and not isinstance(ok, NATS_ERRORS):
                raise ok
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self._trouble("could not renew leases: still ours until they lapse", errors[0])

    async def _take(self, p: int) -> None:
        t0 = time.monotonic()
        intake = PartitionIntake(p, self.nc, self.stream, self.prefix, self.ingest, self.publisher,
                                 lambda: self.leases.valid(p), self.config.history_s, self.config.max_inflight, self.progress)
        try:
            takeover = await intake.start()
        except NATS_ERRORS as e:
            self._trouble(f"could not set up partition {p} ({intake.step}): handing it back", e)
            self._busy.discard(p)
            await self._release(p)
            return
        except BaseException:
            self._busy.discard(p)
            raise
        if not self.leases.valid(p):  # the set-up outlasted a lease we could not renew
            self._busy.discard(p)
            self.leases.forget(p)
            return
        intake.run()
        self.intakes[p] = intake
        self._busy.discard(p)
        self.acquired += 1
        self.maybe_duplicate_chunks += takeover.maybe_duplicate_chunks
        log.info("partition acquired", worker=self.worker, partition=p, ack_floor=takeover.ack_floor, start=takeover.start,
                 maybe_duplicate_chunks=takeover.maybe_duplicate_chunks, setup_ms=round((time.monotonic() - t0) * 1000, 1), steps_ms=intake.step_ms,
                 owned=self.owned())

    async def _hand_over(self, p: int, to: str | None) -> None:
        intake = self.intakes.get(p)
        if intake is None:
            self._busy.discard(p)
            return
        self._busy.add(p)
        try:
            clean = await intake.drain(self.config.drain_timeout_s)
            self.intakes.pop(p, None)
            await self._release(p)
            self.handed_over += 1
            log.info("partition handed over", worker=self.worker, partition=p, to=to, all_acknowledged=clean, owned=self.owned())
        finally:
            self._busy.discard(p)

    async def _lose(self, p: int, reason: str, release: bool = False) -> None:
        intake = self.intakes.pop(p, None)
        if intake is not None:
            await intake.abandon(reason)
            self.lost += 1
            log.warning("partition lost", worker=self.worker, partition=p, reason=reason, owned=self.owned())
        if release:
            await self._release(p)
        else:
            self.leases.forget(p)

    async def _release(self, p: int) -> None:
        try:
            await self.leases.release(p)
        except (nats.js.errors.APIError, *NATS_ERRORS):
            self.leases.forget(p)  # it lapses by itself

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _trouble(self, what: str, error: BaseException) -> None:
        if self._trouble_log.ready():
            log.warning(what, worker=self.worker, error=str(error) or type(error).__name__, since_last_log=self._trouble_log.take())

    def prune(self) -> None:
        for intake in self.intakes.values():
            intake.prune()

    async def leave(self) -> None:
        """Hand every partition back (drained and acknowledged) and leave the membership, so the
        others take over at once instead of after the lease time."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        partitions = list(self.intakes)
        await asyncio.gather(*(self._hand_over(p, None) for p in partitions), return_exceptions=True)
        for p in list(self.leases.held):
            await self._release(p)
        try:
            await self.leases.leave()
        except (nats.js.errors.APIError, *NATS_ERRORS):
            pass
        log.info("worker left", worker=self.worker, handed_over=len(partitions))

    def counts(self) -> dict:
        return {"partitions_acquired": self.acquired, "partitions_handed_over": self.handed_over, "partitions_lost": self.lost,
                "maybe_duplicate_chunks": self.maybe_duplicate_chunks}

"""Partition ownership and worker membership in one JetStream key-value bucket: the engine's own
primitives (per-key compare-and-set on revisions, expiry by the bucket's max age), no consensus of ours.

- A worker announces itself with `w.<worker>`, rewritten every `renew_s`.
- It owns partition p while it holds `p.<p>`: taken with `create` (succeeds only if the key is
  absent or deleted), renewed with `update(last=revision)` (fails if anyone else wrote it since),
  handed back with `delete(last=revision)`.
- The bucket's max age is the lease time: a key not rewritten for `ttl_s` disappears, so a worker
  killed with -9 loses its leases and its membership `ttl_s` after its last renewal, and another
  worker's `create` then succeeds. (Per-key TTLs need nats-server 2.11; the bucket-wide max age works
  on 2.9, and leases and heartbeats share the same lifetime anyway.)
- A worker trusts its own lease only until `ttl_s - margin_s` after it *sent* the renewal the server
  accepted: the server's clock for that key started later, so the old owner always stops before
  anyone else can take over, even if it cannot reach the server to learn that it lost the lease.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType

WRONG_LAST_SEQUENCE = 10071
HEARTBEAT = "w."
LEASE = "p."


@dataclass
class Held:
    revision: int
    sent: float  # monotonic time the accepted create/update was sent


class Leases:
    def __init__(self, js, kv, bucket: str, worker: str, ttl_s: float, margin_s: float) -> None:
        self.js = js
        self.kv = kv
        self.bucket = bucket
        self.worker = worker
        self.ttl_s = ttl_s
        self.margin_s = margin_s
        self.held: dict[int, Held] = {}
        self._heartbeat_revision: int | None = None

    @classmethod
    async def open(cls, js, bucket: str, worker: str, ttl_s: float, replicas: int, margin_s: float = 0.5) -> "Leases":
        """Bind to the bucket, creating it (max age = lease time) if it does not exist yet."""
        try:
            kv = await js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            kv = await js.create_key_value(KeyValueConfig(bucket=bucket, history=1, ttl=ttl_s, replicas=replicas, storage=StorageType.FILE))
        status = await kv.status()
        if status.ttl is None or abs(status.ttl - ttl_s) > 1e-3:
            raise LeaseConfigError(f"lease bucket {bucket!r} has a max age of {status.ttl} s, but the lease time asked for is {ttl_s:g} s: "
                                   "every worker must use the same --nats-lease-s (or delete the bucket)")
        return cls(js, kv, bucket, worker, ttl_s, margin_s)

    # ---- membership ----------------------------------------------------------------------------
    async def heartbeat(self, partitions: list[int]) -> None:
        value = json.dumps({"worker": self.worker, "partitions": partitions}).encode()
        self._heartbeat_revision = await self.kv.put(HEARTBEAT + self.worker, value)

    async def members(self) -> set[str]:
        """Workers with a live heartbeat (this one included)."""
        info = await self.js.stream_info(f"KV_{self.bucket}", subjects_filter=f"$KV.{self.bucket}.{HEARTBEAT}>")
        prefix = f"$KV.{self.bucket}.{HEARTBEAT}"
        names = [s[len(prefix):] for s in (info.state.subjects or {})]
        alive = await asyncio.gather(*(self._alive(name) for name in names if name != self.worker))
        return {name for name, ok in alive if ok} | {self.worker}

    async def _alive(self, name: str) -> tuple[str, bool]:
        try:
            await self.kv.get(HEARTBEAT + name)
            return name, True
        except nats.js.errors.KeyNotFoundError:  # deleted (a worker that left) or just expired
            return name, False

    async def leave(self) -> None:
        if self._heartbeat_revision is not None:
            await _delete_if_unchanged(self.kv, HEARTBEAT + self.worker, self._heartbeat_revision)

    # ---- leases --------------------------------------------------------------------------------
    def _value(self) -> bytes:
        return json.dumps({"worker": self.worker, "since": time.time()}).encode()

    async def acquire(self, partition: int) -> bool:
        """Take a free partition; False if someone holds it.

        nats-py's `create` is two steps when the key exists: the write is refused, then it reads the key
        to tell a live key from a deleted one. A lease that expires between the two makes that read raise
        `KeyNotFoundError`: the partition has just become free, so take it with one more `create`."""
        for attempt in range(2):
            sent = time.monotonic()
            try:
                revision = await self.kv.create(LEASE + str(partition), self._value())
            except nats.js.errors.KeyWrongLastSequenceError:
                return False
            except nats.js.errors.KeyNotFoundError:
                if attempt == 0:
                    continue  # it expired during the call
                return False  # again: leave it to the next round of the ownership loop
            self.held[partition] = Held(revision, sent)
            return True
        return False

    async def renew(self, partition: int) -> bool:
        """Extend a held lease; False if it was lost (it expired and someone else took it). Other
        errors (server unreachable) propagate: the lease is still ours until `valid` says otherwise."""
        held = self.held[partition]
        sent = time.monotonic()
        try:
            held.revision = await self.kv.update(LEASE + str(partition), self._value(), last=held.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            self.held.pop(partition, None)
            return False
        held.sent = sent
        return True

    def valid(self, partition: int) -> bool:
        held = self.held.get(partition)
        return held is not None and time.monotonic() < held.sent + self.ttl_s - self.margin_s

    def forget(self, partition: int) -> None:
        """Stop trusting a lease (it lapsed locally)."""
        self.held.pop(partition, None)

    async def release(self, partition: int) -> None:
        """Hand a partition back now, so its next owner need not wait for the lease to expire."""
        held = self.held.pop(partition, None)
        if held is not None:
            await _delete_if_unchanged(self.kv, LEASE + str(partition), held.revision)


async def _delete_if_unchanged(kv, key: str, revision: int) -> None:
    """Delete a key we wrote last; if it expired or someone wrote it since, it is not ours to delete."""
    try:
        await kv.delete(key, last=revision)
    except nats.js.errors.BadRequestError as e:
        if e.err_code != WRONG_LAST_SEQUENCE:
            raise


class Progress:
    """How far each partition's raw chunks are done (their heart rate stored), in a bucket without
    expiry, R3 in a cluster: what the next owner of a partition starts from, even when the previous
    owner's consumer went down with its node (consumers are R1: they are cheap to make at each
    takeover, and this record is what must survive). Every value written is true of the chunks up to
    it, so a late write from a previous owner can only make the next owner redo a little more."""

    def __init__(self, kv) -> None:
        self.kv = kv
        self.written: dict[int, int] = {}

    @classmethod
    async def open(cls, js, bucket: str, replicas: int) -> "Progress":
        try:
            kv = await js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            kv = await js.create_key_value(KeyValueConfig(bucket=bucket, history=1, replicas=replicas, storage=StorageType.FILE))
        return cls(kv)

    async def get(self, partition: int) -> int:
        try:
            entry = await self.kv.get(LEASE + str(partition))
        except nats.js.errors.KeyNotFoundError:
            return 0
        try:
            return int(entry.value or b"0")
        except ValueError:
            return 0

    async def put(self, partition: int, done_through: int) -> None:
        if done_through > self.written.get(partition, 0):
            await self.kv.put(LEASE + str(partition), str(done_through).encode())
            self.written[partition] = done_through


class LeaseConfigError(RuntimeError):
    """The bucket exists with settings this worker cannot share."""

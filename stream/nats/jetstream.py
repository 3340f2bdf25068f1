"""Connect to NATS and declare what the scale-out needs: the raw-chunk stream (a buffer of P
partitions, minutes long, not an archive) and the heart-rate stream, checking that the servers'
subject mapping partitions raw chunks into the first.

Workers create the streams on first start (creating a stream with the same configuration twice is a
no-op in JetStream, so workers starting together do not race). A stream made for another partition
count is an error, not something to silently reshape: the partition count is recorded in the
stream's description (stream metadata needs nats-server 2.10).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from .subjects import hr_subjects, mapping, partitioned_subjects, server_config
from ..runtime.throttle import Throttle

log = structlog.get_logger("ppg_stream.nats")

WRONG_LAST_SEQUENCE = 10071  # JetStream: the expected last sequence does not match (nothing stored)
EXPECTED_STREAM_MISMATCH = 10060  # JetStream: another stream than the expected one took the subject
_PARTITIONS = re.compile(r"(\d+) partitions")
T = TypeVar("T")


SETUP_WAIT_S = 30.0  # how long a worker waits for a cluster that is still electing its JetStream leaders


class NatsSetupError(RuntimeError):
    """The NATS side is not as this worker needs it; the message says what to change."""


async def retry_while_electing(step: Callable[[], Awaitable[T]], wait_s: float = SETUP_WAIT_S) -> T:
    """Run an idempotent set-up step, again while JetStream answers "temporarily unavailable" or not
    in time: a cluster that has just started (or lost a node) answers so until its meta leader and
    each new stream's or bucket's leader are elected, which takes seconds on a loaded machine. So does
    "stream not found" for a stream another worker has just created (its add was refused as a
    duplicate, its info not there yet): every step creates what it needs, so a missing stream can only
    be one on its way. Any other error, and "no responders" (a server without JetStream), is final."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await step()
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError, nats.js.errors.NotFoundError) as e:
            if time.monotonic() > deadline:
                raise
            log.warning("JetStream not ready, set-up retried", error=str(e) or type(e).__name__)
            await asyncio.sleep(0.5)


def parse_nats_urls(text: str) -> list[str]:
    """`nats://host[:port][,nats://host:port...]` → URLs; raises ValueError with a one-line reason."""
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        raise ValueError(f"--nats {text!r}: expected nats://HOST[:PORT][,nats://HOST:PORT...]")
    for url in urls:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("nats", "tls") or not parts.hostname or (port is not None and not 0 < port < 65536) or parts.path not in ("", "/"):
            raise ValueError(f"--nats {url!r}: expected nats://HOST[:PORT] (several separated by commas)")
    return urls


async def connect(urls: list[str], name: str, connect_timeout_s: float = 3.0) -> nats.NATS:
    """A connection that reconnects forever (a cluster's other nodes are in the pool), logging
    outages once instead of the client library's tracebacks."""
    outage = Throttle(10.0)

    async def on_error(e: Exception) -> None:
        if outage.ready():
            log.warning("NATS connection trouble", error=str(e) or type(e).__name__, since_last_log=outage.take())

    async def on_disconnected() -> None:
        if not nc.is_closed:
            log.info("NATS disconnected: reconnecting")

    async def on_reconnected() -> None:
        log.info("NATS reconnected", server=nc.connected_url.netloc if nc.connected_url else None)

    if not any(await asyncio.gather(*(_answers(url, connect_timeout_s) for url in urls))):
        raise NatsSetupError(f"cannot reach NATS at {', '.join(urls)}: nothing accepts connections there")
    try:
        nc = await nats.connect(
            urls, name=name, connect_timeout=connect_timeout_s, reconnect_time_wait=0.25, max_reconnect_attempts=-1,
            ping_interval=5, max_outstanding_pings=2, error_cb=on_error, disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected, dont_randomize=True, allow_reconnect=True,
        )
    except (nats.errors.NoServersError, OSError, TimeoutError) as e:
        raise NatsSetupError(f"cannot reach NATS at {', '.join(urls)}: {e or type(e).__name__}") from None
    return nc


async def _answers(url: str, timeout_s: float) -> bool:
    """Does anything accept TCP connections there? (The client retries forever once connected, so an
    address nothing listens on must be caught before.)"""
    parts = urlsplit(url)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 4222), timeout_s)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True


def has_jetstream(nc: nats.NATS) -> bool:
    """Whether the server this client reached runs JetStream (its INFO says so, elected or not): a server
    without it answers JetStream requests "unavailable" exactly as a cluster still electing does."""
    return bool(getattr(nc, "_server_info", {}).get("jetstream", False))


def auto_replicas(nc: nats.NATS) -> int:
    """3 in a cluster of three or more nodes, else what the cluster has (1 for a single server)."""
    known = {u.netloc for u in nc.servers}
    return max(1, min(3, len(known)))


@dataclass(frozen=True)
class StreamPlan:
    prefix: str  # subject prefix
    raw_stream: str
    hr_stream: str
    partitions: int
    replicas: int
    buffer_s: float  # how long raw chunks and HR messages are kept
    max_bytes: int  # per stream; the oldest go first beyond it

    @property
    def description(self) -> str:
        return f"ppg-stream raw chunks by device, {self.partitions} partitions ({self.prefix}.*.raw mapped to {self.prefix}.raw.<p>.<device>)"


async def ensure_streams(js, plan: StreamPlan) -> None:
    raw = StreamConfig(
        name=plan.raw_stream, subjects=[partitioned_subjects(plan.prefix)], description=plan.description,
        retention=RetentionPolicy.LIMITS, discard=DiscardPolicy.OLD, max_age=plan.buffer_s, max_bytes=plan.max_bytes,
        storage=StorageType.FILE, num_replicas=plan.replicas, duplicate_window=min(120.0, plan.buffer_s),
    )
    hr = StreamConfig(
        name=plan.hr_stream, subjects=[hr_subjects(plan.prefix)], description="ppg-stream heart rate, one message per device and window",
        retention=RetentionPolicy.LIMITS, discard=DiscardPolicy.OLD, max_age=plan.buffer_s, max_bytes=plan.max_bytes,
        storage=StorageType.FILE, num_replicas=plan.replicas, duplicate_window=min(120.0, plan.buffer_s),
    )
    for config in (raw, hr):
        try:
            info = await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(config)
                log.info("stream created", stream=config.name, subjects=config.subjects, replicas=config.num_replicas, max_age_s=config.max_age)
                continue
            except nats.js.errors.BadRequestError:  # another worker created it meanwhile
                info = await js.stream_info(config.name)
        if list(info.config.subjects or []) != config.subjects:
            raise NatsSetupError(f"stream {config.name} exists for subjects {info.config.subjects}, not {config.subjects}")
        if config is raw:
            found = _PARTITIONS.search(info.config.description or "")
            if found is None or int(found.group(1)) != plan.partitions:
                raise NatsSetupError(
                    f"stream {config.name} was made for {found.group(1) if found else 'an unknown number of'} partitions, "
                    f"this worker was started with --nats-partitions {plan.partitions}: use the same everywhere"
                )


async def check_mapping(js, plan: StreamPlan, wait_s: float = 10.0) -> None:
    """Publish a probe that our raw stream refuses without storing it (it expects an impossible last
    sequence), to learn which stream, if any, a gateway's `<prefix>.<device>.raw` reaches. A stream
    just created answers once its leader is elected, so "nobody answers" is retried for `wait_s`."""
    probe = f"{plan.prefix}._ppg-stream-probe.raw"
    headers = {"Nats-Expected-Stream": plan.raw_stream, "Nats-Expected-Last-Sequence": str(2**63 - 1)}
    hint = "add to every nats-server's configuration and reload it: " + " ".join(server_config(plan.prefix, plan.partitions).split())
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                await js.publish(probe, b"", headers=headers, timeout=5.0)
                break
            except (nats.js.errors.NoStreamResponseError, nats.errors.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.25)
    except (nats.js.errors.NoStreamResponseError, nats.errors.TimeoutError):
        raise NatsSetupError(f"nothing stores {plan.prefix}.<device>.raw: the servers do not map it onto {mapping(plan.prefix, plan.partitions)[1]} "
                             f"(or, with authorization, this worker's user may not publish the probe {plan.prefix}.raw.*._ppg-stream-probe); {hint}") from None
    except nats.js.errors.APIError as e:
        if e.err_code == WRONG_LAST_SEQUENCE:
            return
        if e.err_code == EXPECTED_STREAM_MISMATCH:
            raise NatsSetupError(f"{plan.prefix}.<device>.raw is stored by another stream than {plan.raw_stream}: is the mapping missing? {hint}") from None
        raise
    raise NatsSetupError(f"the probe on {probe} was stored: the stream {plan.raw_stream} does not check expected sequences")

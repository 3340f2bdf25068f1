"""What a long-running service does beside the runtime's own loop: devices that went silent leave,
and a periodic stats line says how the service is doing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from .pipeline import Runtime
from .summary import LatencyHistogram

log = structlog.get_logger("ppg_stream.serve")


async def idle_sweeper(runtime: Runtime, idle_timeout_s: float, after: Callable[[], None] | None = None) -> None:
    """Every device silent for `idle_timeout_s` leaves (`after` runs once some did)."""
    while True:
        await asyncio.sleep(min(1.0, idle_timeout_s / 4))
        idle = runtime.table.idle(idle_timeout_s)
        for device in idle:
            runtime.drop_device(device, f"no data for {idle_timeout_s:g} s")
        if idle and after is not None:
            after()


async def stats_logger(runtime: Runtime, every_s: float, extra: Callable[[], dict] | None = None) -> None:
    """One `stats` log line every `every_s`: rates over the interval, totals, and the interval's latency."""
    last = (time.monotonic(), runtime.chunks_in, runtime.windows_total)
    while True:
        await asyncio.sleep(every_s)
        now = time.monotonic()
        dt = now - last[0]
        totals = runtime.totals()
        lat = runtime.interval_latency
        log.info(
            "stats", devices=len(runtime.table), chunks_per_s=round((runtime.chunks_in - last[1]) / dt, 1),
            windows_per_s=round((runtime.windows_total - last[2]) / dt, 1), late=totals.late,
            dropped_stale=totals.dropped_stale, dropped_chunks=totals.dropped_chunks, refused_devices=runtime.table.refused,
            latency_p50_ms=round(lat.percentile(50), 3), latency_p99_ms=round(lat.percentile(99), 3),
            **(extra() if extra is not None else {}),
        )
        runtime.interval_latency = LatencyHistogram()
        last = (now, runtime.chunks_in, runtime.windows_total)

"""What a long-running service does beside the runtime's own loop: devices that went silent leave,
and a periodic stats line says how the service is doing."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable

import structlog

from .pipeline import Runtime
from .summary import LatencyHistogram

log = structlog.get_logger("ppg_stream.serve")


TRIM_AFTER_DEVICES = 1000  # devices gone since the last trim before freed memory is handed back


async def idle_sweeper(runtime: Runtime, idle_timeout_s: float, after: Callable[[], None] | None = None) -> None:
    """Every device silent for `idle_timeout_s` leaves (`after` runs once some did). Once a thousand
    devices have gone (a flood of ids ended), the memory they held is handed back to the system."""
    gone = 0
    while True:
        await asyncio.sleep(min(1.0, idle_timeout_s / 4))
        idle = runtime.table.idle(idle_timeout_s)
        for device in idle:
            runtime.drop_device(device, f"no data for {idle_timeout_s:g} s")
        if idle and after is not None:
            after()
        gone += len(idle)
        if gone >= TRIM_AFTER_DEVICES and len(runtime.table) * 4 < gone:
            gone = 0
            runtime.table.compact()
            release_memory()


def release_memory() -> None:
    """Collect, then ask the C allocator to return freed heap pages to the system (glibc's
    malloc_trim): per-device arrays are small enough to live in the heap, and without this the
    resident size stays at its peak after the devices that needed it are gone."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


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
            dropped_stale=totals.dropped_stale, received_chunks=totals.received_chunks, duplicate_chunks=totals.duplicate_chunks,
            missing_chunks=totals.missing_chunks, dropped_chunks=totals.dropped_chunks, refused_devices=runtime.table.refused,
            latency_p50_ms=round(lat.percentile(50), 3), latency_p99_ms=round(lat.percentile(99), 3),
            **(extra() if extra is not None else {}),
        )
        runtime.interval_latency = LatencyHistogram()
        last = (now, runtime.chunks_in, runtime.windows_total)

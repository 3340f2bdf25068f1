"""Feed one single-device source (a replay, a BLE wearable) into the runtime as one keyed device."""

from __future__ import annotations

from .pipeline import Runtime
from .source import Source


async def pump(runtime: Runtime, source: Source, device: str, wait: bool) -> int:
    """Hand every chunk of `source` to the runtime under `device`; returns the chunks handed over.

    `wait`: a replay waits for room in the device's queue (nothing lost); a live source never waits
    (its oldest queued chunk is dropped and counted when it outpaces the runtime)."""
    state = runtime.open_device(device, frozenset(source.rates), dict(source.rates), source.labels_bpm)
    if state is None:
        return 0
    count = 0
    try:
        async for chunk, arrival in source.chunks():
            if wait:
                await runtime.put(state, chunk, arrival)
            else:
                runtime.offer(state, chunk, arrival)
            count += 1
    finally:
        runtime.finish_device(device)
    return count

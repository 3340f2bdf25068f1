"""Replay a recording as a live stream: in real time (`speed=1`), faster (`speed=N`) or as fast as possible.

Chunks of `chunk_s` seconds are emitted per channel group, interleaved in time. Each comes with the
wall-clock moment its last sample would have existed in a live stream, so the pipeline measures
latency and falls behind exactly as it would on a device.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np

from ...replay.recording import Recording
from ..core.chunk import ACC, PPG, Chunk

REALTIME_CHUNK_S = 0.25
MAX_SPEED_CHUNK_S = 32.0
BURST_BLOCKS = 256  # blocks emitted back to back at most while behind schedule


class ReplaySource:
    def __init__(self, recording: Recording, speed: float | None = 1.0, chunk_s: float | None = None) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive or None (as fast as possible), got {speed}")
        self.recording = recording
        self.name = recording.subject
        self.speed = speed
        self.chunk_s = chunk_s or (MAX_SPEED_CHUNK_S if speed is None else REALTIME_CHUNK_S)
        self.rates = {PPG: recording.fs_ppg}
        if recording.has_acc:
            self.rates[ACC] = float(recording.fs_acc)
        self.labels_bpm = recording.labels_bpm

    def blocks(self) -> list[tuple[float, list[Chunk]]]:
        """(end time, chunks) per block, in emission order; training cuts recordings the same way."""
        rec = self.recording
        end = max(rec.t_ppg[-1], rec.t_acc[-1] if rec.has_acc else 0.0)
        edges = np.arange(0.0, end + self.chunk_s, self.chunk_s)
        streams = [(PPG, rec.t_ppg, rec.ppg)] + ([(ACC, rec.t_acc, rec.acc)] if rec.has_acc else [])
        cuts = {g: np.searchsorted(t, edges, side="left") for g, t, _ in streams}
        blocks = []
        for b in range(len(edges) - 1):
            chunks = [Chunk(g, t[cuts[g][b] : cuts[g][b + 1]], x[cuts[g][b] : cuts[g][b + 1]]) for g, t, x in streams]
            chunks = [c for c in chunks if len(c.t)]
            if chunks:
                blocks.append((float(edges[b + 1]), chunks))
        return blocks

    async def chunks(self) -> AsyncIterator[tuple[Chunk, float]]:
        start = time.perf_counter()
        behind = 0
        for block_end, chunks in self.blocks():
            if self.speed is None:
                now = time.perf_counter()
                for chunk in chunks:
                    yield chunk, now
                await asyncio.sleep(0)  # let publishers run between blocks
                continue
            due = start + block_end / self.speed
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
                behind = 0
            else:  # behind schedule: catch up in a burst, as a live device's backlog arrives at once,
                behind += 1  # but let the loop run now and then so the runtime keeps publishing
                if behind % BURST_BLOCKS == 0:
                    await asyncio.sleep(0)
            for chunk in chunks:
                yield chunk, due

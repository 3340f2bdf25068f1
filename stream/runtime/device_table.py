"""Per-device state in one keyed table: the runtime's only notion of "a device".

A device appears with its first chunk (or when a local source opens it) and leaves when its source
ends or after the idle timeout; its counters then fold into the run's totals and its memory is
freed. `max_devices` bounds the table: beyond it new devices are refused and counted, so a flood of
ids can never exhaust memory. A device whose stream restarts (a new stream id, or time going back)
starts a new epoch: fresh filters, ring and tracker row, logged once per restart.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..core.chunk import Chunk
from ..core.model_spec import ModelSpec
from ..core.preprocess import StreamPreprocessor
from .summary import Tally
from ..core.tracker import TrackerTable

DEFAULT_QUEUE_CHUNKS = 64
RESTART_LIMIT = 3  # new epochs a device may start within RESTART_WINDOW_S; beyond, chunks of yet another stream are refused
RESTART_WINDOW_S = 300.0
KNOWN_STREAMS = 4  # stream ids remembered per device, with how many chunks each brought


@dataclass(eq=False)
class DeviceState:
    device: str
    groups: frozenset[str]
    pre: StreamPreprocessor
    tracker_row: int  # -1 until the device's first window: ids that never make one cost no tracker row
    labels: np.ndarray | None
    queue: deque  # (Chunk or RawHeader, arrival perf_counter, rate or None, Ticket or None), bounded for live sources
    tally: Tally = field(default_factory=Tally)
    last_seen: float = 0.0  # monotonic, for the idle timeout
    stream_id: int | None = None  # raw ingest: the gateway's stream, sequence and times
    last_seq: int = -1
    last_t0: dict = field(default_factory=dict)
    closing: bool = False  # its source ended: leave once the queue is drained
    announced: bool = False  # its `online` status went out (with its first window: a device that never
    #                          produces one leaves nothing retained on the broker)
    restarts: deque = field(default_factory=lambda: deque(maxlen=RESTART_LIMIT))  # monotonic times of recent new epochs
    held: tuple | None = None  # raw intake: one chunk of another stream, waiting to be confirmed (RawHeader, payload, arrival)
    streams: dict = field(default_factory=dict)  # raw intake: recent stream ids → chunks accepted (at most KNOWN_STREAMS)
    space: object | None = None  # asyncio.Event for sources that wait instead of dropping
    last_k: int = -1  # the newest window published in this epoch (the stale-window rule keeps one every few hops)

    def fold_counters(self) -> None:
        """Move the preprocessor's counters into the tally (before a reset or a goodbye)."""
        c = self.pre.counters
        t = self.tally
        t.skipped_gap += c.skipped_windows
        t.invalid_windows += c.invalid_windows
        t.nan_samples += c.nan_samples
        t.backward_samples += c.backward_samples
        t.gaps += c.gaps
        t.incomplete_windows += self.pre.undecided_windows()

    def may_restart(self, stream_id: int | None, now: float) -> bool:
        """Whether a new epoch for `stream_id` is allowed now: at most RESTART_LIMIT within
        RESTART_WINDOW_S (a sender posing as the device must not keep resetting it), except that a
        stream which brought more chunks than the current one always takes the device back (its own
        stream resuming after an impostor's). Counts the refusal when not."""
        known = self.streams.get(stream_id, 0)
        if known and known > self.streams.get(self.stream_id, 0):
            return True
        if len(self.restarts) == RESTART_LIMIT and now - self.restarts[0] < RESTART_WINDOW_S:
            self.tally.refused_restarts += 1
            return False
        self.restarts.append(now)
        return True

    def count_chunk(self, stream_id: int) -> None:
        streams = self.streams
        if stream_id not in streams and len(streams) >= KNOWN_STREAMS:
            del streams[min(streams, key=streams.__getitem__)]  # forget the stream that brought least
        streams[stream_id] = streams.get(stream_id, 0) + 1

    def live_tally(self) -> Tally:
        """The tally including what the preprocessor has counted so far."""
        out = Tally()
        out.add(self.tally)
        c = self.pre.counters
        out.skipped_gap += c.skipped_windows
        out.invalid_windows += c.invalid_windows
        out.nan_samples += c.nan_samples
        out.backward_samples += c.backward_samples
        out.gaps += c.gaps
        return out


class DeviceLimitError(RuntimeError):
    """The table is full: the device is refused (counted), existing devices are untouched."""


class DeviceTable:
    def __init__(self, spec: ModelSpec, trackers: TrackerTable | None, max_devices: int = 10_000, queue_chunks: int = DEFAULT_QUEUE_CHUNKS) -> None:
        self.spec = spec
        self.trackers = trackers
        self.max_devices = max_devices
        self.queue_chunks = queue_chunks
        self.devices: dict[str, DeviceState] = {}
        self.departed = Tally()  # counters of devices that left
        self.departed_count = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self.devices)

    def get(self, device: str) -> DeviceState | None:
        return self.devices.get(device)

    def open(self, device: str, groups: frozenset[str], rates: dict[str, float] | None = None, labels: np.ndarray | None = None) -> DeviceState:
        if device in self.devices:
            raise ValueError(f"device {device!r} is already open")
        if len(self.devices) >= self.max_devices:
            self.refused += 1
            raise DeviceLimitError(f"device limit reached ({self.max_devices}): {device!r} refused")
        state = DeviceState(
            device=device,
            groups=groups,
            pre=StreamPreprocessor(self.spec, rates or None, groups=groups),
            tracker_row=-1,
            labels=labels,
            queue=deque(),
            last_seen=time.monotonic(),
        )
        self.devices[device] = state
        return state

    def restart(self, state: DeviceState, groups: frozenset[str]) -> None:
        """A new epoch for a device: fresh preprocessing and tracking, counters kept."""
        state.fold_counters()
        state.groups = groups
        state.pre = StreamPreprocessor(self.spec, None, groups=groups)
        self._free_row(state)
        state.queue.clear()
        state.last_seq = -1
        state.last_k = -1
        state.last_t0.clear()
        state.tally.epochs += 1

    def close(self, device: str) -> DeviceState | None:
        state = self.devices.pop(device, None)
        if state is None:
            return None
        state.fold_counters()
        self.departed.add(state.tally)
        self.departed_count += 1
        self._free_row(state)
        return state

    def tracker_row(self, state: DeviceState) -> int:
        """The device's row of the tracker table, taken at its first window."""
        if state.tracker_row < 0 and self.trackers is not None:
            state.tracker_row = self.trackers.add()
        return state.tracker_row

    def _free_row(self, state: DeviceState) -> None:
        if state.tracker_row >= 0 and self.trackers is not None:
            self.trackers.remove(state.tracker_row)
        state.tracker_row = -1

    def compact(self) -> None:
        """After a flood of devices has gone: the device dict and the tracker table at today's size."""
        self.devices = dict(self.devices)
        if self.trackers is not None:
            remap = self.trackers.compact()
            for state in self.devices.values():
                if state.tracker_row >= 0:
                    state.tracker_row = remap[state.tracker_row]

    def idle(self, older_than_s: float) -> list[str]:
        """Devices not heard from for `older_than_s` seconds (and with nothing queued)."""
        cutoff = time.monotonic() - older_than_s
        return [d for d, s in self.devices.items() if s.last_seen < cutoff and not s.queue]

    def totals(self) -> Tally:
        total = Tally()
        total.add(self.departed)
        for state in self.devices.values():
            total.add(state.live_tally())
        return total

    @staticmethod
    def enqueue(state: DeviceState, chunk: Chunk, arrival: float, rate: float | None, bound: int | None, ticket: object | None = None,
                backlog_s: float | None = None) -> bool:
        """Append a chunk; if the device's queue is full, the oldest is dropped and counted (False).
        `backlog_s`: chunks that arrived (were sent) more than this before the new one are dropped too,
        oldest first and counted: a service that fell behind keeps each device's newest data, so what it
        holds, and the time it needs to catch up once the load falls, stay bounded."""
        queue = state.queue
        dropped = 0
        if bound is not None and len(queue) >= bound:
            queue.popleft()
            dropped = 1
        if backlog_s is not None and queue:
            oldest = arrival - backlog_s
            while queue and queue[0][1] < oldest and queue[0][3] is None:
                queue.popleft()
                dropped += 1
        queue.append((chunk, arrival, rate, ticket))
        state.last_seen = time.monotonic()
        if dropped:
            state.tally.dropped_chunks += dropped
        return not dropped

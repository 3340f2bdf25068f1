"""The one pipeline: chunks of any number of devices → keyed per-device preprocessing → one batched
ONNX call per scheduling tick → cues, decoding and tracking, beat refinement of still, clean windows
(stream/core/estimate.py) → publishers.

Sources only hand over chunks tagged with a device (`offer` for live sources, which never wait:
a full per-device queue drops its oldest chunk, counted; `put` for replays, which wait for room, so
nothing is lost at --speed max). Each tick takes the queued chunks of every device that has some (a
live device's queue is bounded, so a device that floods cannot starve the others), cuts the windows
that became complete into one shared batch, runs the model once over the batch, and publishes.

Latency of a window = from the moment its last sample existed (the arrival of the chunk that
completed it) to the moment its message is handed to the publishers; over `budget_ms` it is
flagged `late`. In real time, a runtime that falls behind drops windows whose stream-time age
exceeds `max_lag_s` (counted and logged), but keeps each device's newest window of the tick when the
device had none published for STALE_KEEP_HOPS hops: falling behind degrades the rate of messages, it
never blanks them. A window's age counts from when its data was sent where the source says so (raw
chunks of payload version 2), so a backlog that waited in a broker is stale too. With `speed=None` (replay as
fast as possible, or a buffered at-least-once intake such as NATS) nothing is ever dropped.

A chunk may come with a `Ticket` (the NATS intake): the runtime calls `ticket.done()` once the tick
that processed the chunk has handed the messages it produced to the publishers, so the sender can
acknowledge it only then. A ticket with `rebuild` set only rebuilds the device's state (filters,
ring, tracker): the windows that chunk completes are estimated but not published (a new owner of a
partition replaying history its predecessor already published).
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import structlog

from ..core.chunk import ACC, PPG, Chunk
from ..core.decode import softmax
from .budget import DEFAULT_BUDGET_MS
from .device_table import DEFAULT_QUEUE_CHUNKS, DeviceLimitError, DeviceState, DeviceTable
from ..core.beats import BeatGate
from ..core.cues import CueParams
from ..core.estimate import DEFAULT_MIN_CONFIDENCE, estimate_windows
from ..core.engine import InferenceEngine, ModelLoadError
from ..core.message import hr_message, utc_now_iso
from ..core.raw_chunk import GROUP_CODES, HEADER_V2, RawHeader, decode_raw_header
from ..core.preprocess import StreamPreprocessor
from .publisher import Publisher, broadcast_status
from .summary import LatencyHistogram, RunSummary, Tally
from .throttle import Throttle
from ..core.tracker import TrackerTable

log = structlog.get_logger("ppg_stream")

BATCH_WINDOWS = 256  # windows per onnxruntime call (batching beyond this buys little)
# falling behind, a device whose windows are all stale still gets one published every this many hops
# (its newest), so its heart rate keeps flowing while the service sheds the rest of the backlog
STALE_KEEP_HOPS = 5
# behind, a live device keeps at most one window and this many hops of data waiting (its newest window
# can still be made); older chunks are dropped and counted, so catching up after a peak is quick
BACKLOG_HOPS = 2


@dataclass(frozen=True)
class RuntimeConfig:
    budget_ms: float = DEFAULT_BUDGET_MS
    speed: float | None = 1.0  # stream seconds per wall second; None = as fast as possible (never drop)
    max_lag_s: float | None = None  # default: one hop of the model
    tracking: bool = True  # causal forward filter over HR bins (stream/core/tracker.py)
    beat_refinement: bool = True  # beat intervals in still, clean windows (stream/core/beats.py)
    cues: bool = True  # beats and motion question the model (stream/core/cues.py)
    min_confidence: float = DEFAULT_MIN_CONFIDENCE  # below it a message says reliable: false
    max_devices: int = 10_000
    queue_chunks: int = DEFAULT_QUEUE_CHUNKS
    max_backlog_s: float | None = None  # live sources, real time: default one window and BACKLOG_HOPS hops of data per device


class Ticket(Protocol):
    """What a sender attaches to a chunk it must hear back about (see the module docstring)."""

    rebuild: bool

    def done(self) -> None: ...


class Runtime:
    def __init__(self, engine: InferenceEngine, publishers: list[Publisher], config: RuntimeConfig) -> None:
        self.engine = engine
        self.spec = spec = engine.spec
        self.publishers = publishers
        self.config = config
        self.max_lag_s = config.max_lag_s if config.max_lag_s is not None else spec.hop_s
        self.max_backlog_s = None if config.speed is None else (
            config.max_backlog_s if config.max_backlog_s is not None else spec.window_s + BACKLOG_HOPS * spec.hop_s)
        self.trackers = TrackerTable(spec.bins_bpm) if config.tracking else None
        self.beat_gate = BeatGate() if config.beat_refinement and beat_refinement_possible(spec) else None
        self.cues = CueParams() if config.cues else None
        self.confidence_map = spec.confidence_map  # the model's calibration of the published confidence (None: none)
        self.refined_windows = 0
        self.table = DeviceTable(spec, self.trackers, config.max_devices, config.queue_chunks)
        self.latency = LatencyHistogram()
        self.windows_total = 0
        self.stale_total = 0  # windows dropped as stale, all devices (each device's tally has its own)
        self._ready: dict[DeviceState, None] = {}  # devices with queued chunks, in arrival order
        self._wake = asyncio.Event()
        shape = (BATCH_WINDOWS, len(spec.channels), spec.window_samples)
        self._x = np.zeros(shape, dtype=np.float32)
        self._k = np.zeros(BATCH_WINDOWS, dtype=np.int64)
        self._arrival = np.zeros(BATCH_WINDOWS)
        self._rows = np.zeros(BATCH_WINDOWS, dtype=np.int64)
        self._segments: list[tuple[DeviceState, int, int]] = []  # (device, first, end) in the batch
        self._rebuild = np.zeros(BATCH_WINDOWS, dtype=np.bool_)  # windows completed by a rebuild-only chunk
        self._any_rebuild = False
        self._tickets: list[Ticket] = []  # processed chunks whose senders hear back after the next flush
        self.rebuilt_windows = 0
        self._stopping = False
        self.chunks_in = 0
        self.interval_latency = LatencyHistogram()  # since the last periodic stats line
        self._queue_drop_log = Throttle(10.0)
        self._stale_log = Throttle(1.0)
        # per-device lines, throttled like the rest: a flood of device ids must not flood the log
        self._no_acc_log = Throttle(10.0)
        self._left_log = Throttle(1.0)
        self._incomplete_log = Throttle(10.0)

    # ---- devices -------------------------------------------------------------------------------
    def open_device(self, device: str, groups: frozenset[str], rates: dict[str, float] | None = None, labels: np.ndarray | None = None) -> DeviceState | None:
        """Add a device (None if the table is full: refused and counted)."""
        try:
            state = self.table.open(device, groups, rates, labels)
        except DeviceLimitError as e:
            if self.table.refused == 1 or self.table.refused % 1000 == 0:
                log.warning("device refused", reason=str(e), refused=self.table.refused)
            return None
        if self.spec.uses_acc and ACC not in groups and self._no_acc_log.ready():
            log.warning("device has no accelerometer: the model's ACC channels are fed zeros", device=device[:200], model=self.spec.label,
                        devices_since_last_log=self._no_acc_log.take())
        return state

    def finish_device(self, device: str) -> None:
        """Its source ended: the device leaves once its queued chunks are processed."""
        state = self.table.get(device)
        if state is None:
            return
        state.closing = True
        self._ready[state] = None
        self._wake.set()

    def restart_device(self, state: DeviceState, groups: frozenset[str]) -> None:
        """A new epoch: what the device queued before is processed first, then its state starts afresh."""
        self._process_device_queue(state)
        self._flush_batch()
        self._ready.pop(state, None)
        self.table.restart(state, groups)

    def drop_device(self, device: str, reason: str, announce: bool = True) -> None:
        """Leave now (idle timeout): queued chunks are processed first, then offline. `announce=False`:
        the device is handed to another process (a partition moved), so no `offline` is published."""
        state = self.table.get(device)
        if state is not None:
            self._process_device_queue(state)
            self._flush_batch()
            self._leave(state, reason, announce)

    def _leave(self, state: DeviceState, reason: str, announce: bool = True) -> None:
        self._ready.pop(state, None)
        incomplete = state.pre.undecided_windows()
        self.table.close(state.device)
        if announce and state.announced:  # a device that never published leaves nothing behind on the broker
            self._set_status(state.device, "offline")
        if state.space is not None:
            state.space.set()
        if incomplete and self._incomplete_log.ready():
            log.warning("windows never estimated: one channel group (e.g. the accelerometer) stopped before the other",
                        device=state.device[:200], windows=incomplete, devices_since_last_log=self._incomplete_log.take())
        if self._left_log.ready():
            fields = state.tally
            chunks = {name: getattr(fields, name) for name in ("received_chunks", "duplicate_chunks", "missing_chunks", "dropped_chunks")}
            log.info("device left", device=state.device[:200], reason=reason, windows=fields.windows, left_since_last_log=self._left_log.take(),
                     **({"mae_bpm": round(fields.abs_error / fields.labelled_windows, 3)} if fields.labelled_windows else {}),
                     **(chunks if fields.received_chunks else {}))  # a raw device's chunk account

    def _set_status(self, device: str, status: str) -> None:
        broadcast_status(self.publishers, device, status)

    # ---- input -------------------------------------------------------------------------------
    def offer(self, state: DeviceState, chunk: Chunk | RawHeader, arrival: float, rate: float | None = None, ticket: Ticket | None = None) -> bool:
        """A live chunk; never waits. False when chunks were dropped to make room (the queue was full, or older
        than the backlog bound).
        A chunk with a ticket is never dropped: its sender bounds what it has in flight."""
        self.chunks_in += 1
        ok = DeviceTable.enqueue(state, chunk, arrival, rate, self.table.queue_chunks if ticket is None else None, ticket, self.max_backlog_s)
        if not ok and self._queue_drop_log.ready():
            log.warning("device queue over its bound (it sends faster than it is served, or holds more than --max-backlog-s "
                        "of data while the service is behind): dropping its oldest chunks", device=state.device,
                        dropped=state.tally.dropped_chunks, dropped_since_last_log=self._queue_drop_log.take())
        self._ready[state] = None
        self._wake.set()
        return ok

    async def put(self, state: DeviceState, chunk: Chunk, arrival: float, rate: float | None = None) -> None:
        """A replayed chunk, never dropped. As fast as possible (speed None), it waits for room in the
        device's queue; in real time it is queued at once, like data a live device already sent (a
        replay is finite, and its chunks are views of the recording)."""
        if self.config.speed is not None:
            self.chunks_in += 1
            DeviceTable.enqueue(state, chunk, arrival, rate, None)
            self._ready[state] = None
            self._wake.set()
            return
        while len(state.queue) >= self.table.queue_chunks and state.device in self.table.devices:
            if state.space is None:
                state.space = asyncio.Event()
            state.space.clear()
            self._wake.set()
            await state.space.wait()
        self.offer(state, chunk, arrival, rate)

    # ---- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Tick until `stop()`; then process what is queued and return."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            self.tick()
            if self._stopping and not self._ready:
                return
            await asyncio.sleep(0)  # let sources and publishers run between ticks

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def finish_all(self) -> None:
        """Shutting down: every device leaves after its queued chunks, then the run loop ends."""
        for device in list(self.table.devices):
            self.finish_device(device)
        self.stop()

    def tick(self) -> None:
        """One scheduling round over every device with queued chunks."""
        for state in list(self._ready):
            self._process_device_queue(state)
            del self._ready[state]
            if state.closing:
                self._flush_batch()
                self._leave(state, "source ended")
        self._flush_batch()

    def _process_device_queue(self, state: DeviceState) -> None:
        """Everything the device has queued (its queue is bounded, so one device's share of a tick is too),
        handed to the preprocessor as one batch: one kernel call per run of raw chunks of a group."""
        queue = state.queue
        if queue:
            entries = list(queue)
            queue.clear()
            pre = state.pre
            chunks = [e[0] for e in entries]
            rebuilds = [e[3] is not None and e[3].rebuild for e in entries]
            for _ in pre.push_queue(chunks, [e[2] for e in entries]):
                self._collect(state, entries, rebuilds)
            self._tickets += [e[3] for e in entries if e[3] is not None]
        if state.space is not None:
            state.space.set()

    def _collect(self, state: DeviceState, entries: list, rebuilds: list[bool]) -> None:
        """The windows the device's chunks completed, into the shared batch; each window's arrival (and
        rebuild flag) is that of the queued chunk that completed it."""
        pre = state.pre
        while True:
            n0 = self._segments[-1][2] if self._segments else 0
            got = pre.collect_into(self._x[n0:], self._k[n0:])
            if not got:
                return
            first = entries[0][1]
            if len(entries) == 1 or (not any(rebuilds) and all(e[1] == first for e in entries)):  # one arrival for all (one read)
                self._arrival[n0 : n0 + got] = first
                rebuild = rebuilds[0]
            else:
                by = pre.completed_by(self._k[n0 : n0 + got])
                self._arrival[n0 : n0 + got] = [entries[i][1] for i in by]
                rebuild = any(rebuilds)
                if rebuild:
                    self._rebuild[n0 : n0 + got] = [rebuilds[i] for i in by]
                    self._any_rebuild = True
                    rebuild = False
            if rebuild:
                self._rebuild[n0 : n0 + got] = True
                self._any_rebuild = True
            self._rows[n0 : n0 + got] = self.table.tracker_row(state)
            if self._segments and self._segments[-1][0] is state:
                self._segments[-1] = (state, self._segments[-1][1], n0 + got)
            else:
                self._segments.append((state, n0, n0 + got))
            if n0 + got < BATCH_WINDOWS:
                return
            self._flush_batch()

    def _flush_batch(self) -> None:
        """Run the model over the windows collected so far and publish; then the tickets of the chunks
        processed before this point are done (their windows were in this batch or an earlier one)."""
        self._run_batch()
        if self._tickets:
            tickets, self._tickets = self._tickets, []
            for ticket in tickets:
                ticket.done()

    def _run_batch(self) -> None:
        if not self._segments:
            return
        segments, self._segments = self._segments, []
        n = segments[-1][2]
        rebuild = None
        if self._any_rebuild:
            rebuild = self._rebuild[:n].copy()
            self._rebuild[:n] = False
            self._any_rebuild = False
        keep = self._stale_filter(segments, n)
        if keep is not None:
            segments = _reindex(segments, keep)
            x, k, arrival, rows = self._x[:n][keep], self._k[:n][keep], self._arrival[:n][keep], self._rows[:n][keep]
            rebuild = rebuild[keep] if rebuild is not None else None
        else:
            x, k, arrival, rows = self._x[:n], self._k[:n], self._arrival[:n], self._rows[:n]
        if not len(k):
            return
        logits = self.engine.run(x)
        if logits.shape != (len(k), len(self.spec.bins_bpm)):  # warm-up checks this too; a model may still vary
            raise ModelLoadError(f"{self.engine.model}: a batch of {len(k)} windows gave an output of shape {list(logits.shape)}, "
                                 f"not [{len(k)}, {len(self.spec.bins_bpm)}]")
        finite = np.isfinite(logits).all(axis=1)
        if not finite.all():
            for state, a, b in segments:
                state.tally.invalid_windows += int((~finite[a:b]).sum())
            segments = _reindex(segments, finite)
            logits, k, arrival, rows, x = logits[finite], k[finite], arrival[finite], rows[finite], x[finite]
            rebuild = rebuild[finite] if rebuild is not None else None
            if not len(k):
                return
        probs = softmax(logits)
        out = estimate_windows(x, probs, self.spec.bins_bpm, self.spec.fs, self.trackers, rows, k, self.cues, self.beat_gate,
                               overwrite_probs=True, confidence_map=self.confidence_map)
        bpm, confidence, untracked = out.bpm, out.confidence, out.untracked
        self.refined_windows += int(out.refined.sum())
        if rebuild is not None and rebuild.any():  # state rebuilt; these windows were published before
            self.rebuilt_windows += int(rebuild.sum())
            live = ~rebuild
            segments = _reindex(segments, live)
            k, arrival, bpm, untracked, confidence = k[live], arrival[live], bpm[live], untracked[live], confidence[live]
            if not len(k):
                return
        handoff = time.perf_counter()
        latency_ms = (handoff - arrival) * 1000.0
        late = latency_ms > self.config.budget_ms
        self.latency.add(latency_ms)
        self.interval_latency.add(latency_ms)
        self.windows_total += len(k)
        ts = utc_now_iso()
        hop, win, model, least = self.spec.hop_s, self.spec.window_s, self.spec.label, self.config.min_confidence
        k_list, bpm_list, conf_list, lat_list, late_list = k.tolist(), bpm.tolist(), confidence.tolist(), latency_ms.tolist(), late.tolist()
        messages = []
        for state, a, b in segments:
            device = state.device
            if not state.announced:
                state.announced = True
                self._set_status(device, "online")
            messages += [
                hr_message(device, k_list[i], k_list[i] * hop + win, ts, bpm_list[i], conf_list[i], lat_list[i], late_list[i], model,
                           conf_list[i] >= least)
                for i in range(a, b)
            ]
            state.last_k = k_list[b - 1]
            tally = state.tally
            tally.windows += b - a
            tally.late += sum(late_list[a:b])
            if state.labels is not None:
                tally.add_errors(k[a:b], bpm[a:b], untracked[a:b], state.labels)
        for publisher in self.publishers:
            publisher.publish(messages)

    def _stale_filter(self, segments: list, n: int) -> np.ndarray | None:
        """In real time: windows older than max_lag_s of stream time, except each device's newest when it
        had no window published for STALE_KEEP_HOPS hops (or none yet in this epoch)."""
        speed = self.config.speed
        if speed is None:
            return None
        age_s = (time.perf_counter() - self._arrival[:n]) * speed
        stale = age_s > self.max_lag_s
        if not stale.any():
            return None
        k = self._k
        for state, a, b in segments:
            if not stale[b - 1] or state.last_k < 0 or k[b - 1] - state.last_k >= STALE_KEEP_HOPS:
                stale[b - 1] = False
            dropped = int(stale[a:b].sum())
            if dropped:
                state.tally.dropped_stale += dropped
        n_stale = int(stale.sum())
        self.stale_total += n_stale
        if n_stale and self._stale_log.ready():
            self._stale_log.take()
            # a running total: summing every device's tally here cost O(devices) per line, a fifth of the
            # core a service 9,000 devices behind had left (bench_fleet --recover)
            log.warning("falling behind: dropped stale windows", dropped=n_stale, total_dropped=self.stale_total)
        return ~stale

    # ---- account -------------------------------------------------------------------------------
    def totals(self) -> Tally:
        return self.table.totals()

    def summary(self, wall_s: float) -> RunSummary:
        return RunSummary.of(
            self.totals(), self.latency, wall_s, devices=len(self.table) + self.table.departed_count,
            refused_devices=self.table.refused,
        )


def beat_refinement_possible(spec) -> bool:
    """The gate needs the accelerometer in g (stillness): a model with ACC channels left unnormalised."""
    return spec.uses_acc and spec.extra.get("acc_normalize", spec.normalize) == "none"


def _reindex(segments: list[tuple[DeviceState, int, int]], keep: np.ndarray) -> list[tuple[DeviceState, int, int]]:
    """Segment bounds after removing the windows where `keep` is False (empty segments vanish)."""
    kept = np.concatenate([[0], np.cumsum(keep)])
    out = []
    for state, a, b in segments:
        a2, b2 = int(kept[a]), int(kept[b])
        if b2 > a2:
            out.append((state, a2, b2))
    return out


def warm_up_runtime(engine: InferenceEngine, rates: dict[str, float]) -> None:
    """Compile the Numba kernels (they depend on types, not rates) and run the model once, so the first
    window is not late. A live source calls this before connecting; afterwards the objects warm-up
    created are frozen out of the garbage collector's sight, so steady-state collections stay short."""
    spec = engine.spec
    probe = StreamPreprocessor(spec, rates)
    n = int(spec.window_s * 1.5 * rates[PPG])
    probe.push(Chunk(PPG, np.arange(n) / rates[PPG], np.random.default_rng(0).normal(size=(n, 1))))
    if ACC in rates:
        m = int(spec.window_s * 1.5 * rates[ACC])
        probe.push(Chunk(ACC, np.arange(m) / rates[ACC], np.zeros((m, 3))))
    batch = probe.windows()
    raw_probe = StreamPreprocessor(spec, rates)  # raw chunks: samples read from the payloads, times made in the kernel
    probes = [decode_raw_header(HEADER_V2.pack(2, GROUP_CODES[group], channels, 3 if ACC in rates else 1, 1, 0, int(rate), rate, 0.0, 0.0)
                                + bytes(4 * int(rate) * channels))
              for group, rate, channels in ((PPG, rates[PPG], 1), *(((ACC, rates[ACC], 3),) if ACC in rates else ()))]
    for _ in raw_probe.push_queue(probes, [p.rate_hz for p in probes]):
        pass
    engine.warm_up()
    if len(batch.k):
        probs = softmax(engine.run(batch.x))
        table = TrackerTable(spec.bins_bpm, capacity=1)
        estimate_windows(batch.x, probs, spec.bins_bpm, spec.fs, table, np.full(len(batch.k), table.add()), batch.k)
    LatencyHistogram().add(np.ones(1))  # the run's latency histogram: compiled now, not by the first window
    gc.collect()
    gc.freeze()

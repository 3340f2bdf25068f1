"""Source → preprocessor → ONNX → decoding → publishers, with the per-window latency budget.

Latency of a window = from the moment its last sample existed (the chunk's arrival) to the moment its
message is handed to the publishers. Windows over `budget_ms` are flagged `late` and counted. In
real-time mode a pipeline that falls behind drops windows whose stream-time age exceeds `max_lag_s`
(stalest first, counted and logged) rather than lag without bound; at `speed=None` nothing is dropped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
import structlog

from stream.chunk import ACC, PPG, Chunk
from stream.decode import decode_probabilities, softmax
from stream.engine import InferenceEngine
from stream.message import hr_message, utc_now_iso
from stream.preprocess import StreamPreprocessor
from stream.publisher import Publisher
from stream.source import Source
from stream.summary import RunSummary, mae_against_labels, percentile
from stream.tracker import Tracker

log = structlog.get_logger("ppg_stream")

DEFAULT_BUDGET_MS = 50.0
QUEUE_CHUNKS_MAX_SPEED = 8  # backpressure for --speed max; live sources are never blocked


@dataclass(frozen=True)
class PipelineConfig:
    device: str
    budget_ms: float = DEFAULT_BUDGET_MS
    max_lag_s: float | None = None  # default: one hop of the model
    tracking: bool = True  # causal forward filter over HR bins (stream/tracker.py)


class Pipeline:
    def __init__(self, source: Source, engine: InferenceEngine, publishers: list[Publisher], config: PipelineConfig) -> None:
        self.source = source
        self.engine = engine
        self.publishers = publishers
        self.config = config
        self.spec = engine.spec
        self.preprocessor = StreamPreprocessor(self.spec, source.rates)
        self.max_lag_s = config.max_lag_s if config.max_lag_s is not None else self.spec.hop_s
        self._k: list[np.ndarray] = []
        self._bpm: list[np.ndarray] = []
        self._latency: list[np.ndarray] = []
        self._bpm_untracked: list[np.ndarray] = []
        self.tracker = Tracker(self.spec.bins_bpm) if config.tracking else None
        self.late = 0
        self.dropped = 0
        if self.preprocessor.missing_acc:
            log.warning("source has no accelerometer: the model's ACC channels are fed zeros", model=self.spec.label)

    def warm_up(self) -> None:
        """Compile the Numba kernels and run the model once, so the first window is not late."""
        warm_up_runtime(self.engine, self.source.rates)

    async def run(self) -> RunSummary:
        started = time.perf_counter()
        realtime = self.source.speed is not None
        queue: asyncio.Queue = asyncio.Queue(maxsize=0 if realtime else QUEUE_CHUNKS_MAX_SPEED)
        producer = asyncio.create_task(self._produce(queue), name="source")
        try:
            while True:
                item = await queue.get()
                items = [item]
                while not queue.empty():
                    items.append(queue.get_nowait())
                done = items[-1] is None
                self._process([i for i in items if i is not None], realtime)
                if done:
                    break
        finally:
            producer.cancel()
            try:
                await producer
            except asyncio.CancelledError:
                pass
        return self.summary(time.perf_counter() - started)

    async def _produce(self, queue: asyncio.Queue) -> None:
        try:
            async for chunk, arrival in self.source.chunks():
                await queue.put((chunk, arrival))
        finally:
            await queue.put(None)

    def _process(self, items: list, realtime: bool) -> None:
        ks, xs, arrivals = [], [], []
        for chunk, arrival in items:
            batch = self.preprocessor.feed(chunk)
            if len(batch.k):
                ks.append(batch.k)
                xs.append(batch.x)
                arrivals.append(np.full(len(batch.k), arrival))
        if not ks:
            return
        k = np.concatenate(ks) if len(ks) > 1 else ks[0]
        x = np.concatenate(xs) if len(xs) > 1 else xs[0]
        arrival = np.concatenate(arrivals) if len(arrivals) > 1 else arrivals[0]
        if realtime:
            age_stream_s = (time.perf_counter() - arrival) * self.source.speed
            stale = age_stream_s > self.max_lag_s
            if stale.any():
                n_stale = int(stale.sum())
                self.dropped += n_stale
                log.warning("falling behind: dropped stale windows", dropped=n_stale, windows=k[stale].tolist()[:10], total_dropped=self.dropped)
                keep = ~stale
                k, x, arrival = k[keep], x[keep], arrival[keep]
                if not len(k):
                    return
        probs = softmax(self.engine.run(x))
        untracked, confidence = decode_probabilities(probs, self.spec.bins_bpm)
        bpm = untracked
        if self.tracker is not None:
            bpm, confidence = self.tracker.update(k, probs)
        handoff = time.perf_counter()
        latency_ms = (handoff - arrival) * 1000.0
        late = latency_ms > self.config.budget_ms
        self.late += int(late.sum())
        ts = utc_now_iso()
        hop, win, device, model = self.spec.hop_s, self.spec.window_s, self.config.device, self.spec.label
        messages = [
            hr_message(device, ki, ki * hop + win, ts, b, c, lat, lt, model)
            for ki, b, c, lat, lt in zip(k.tolist(), bpm.tolist(), confidence.tolist(), latency_ms.tolist(), late.tolist())
        ]
        for publisher in self.publishers:
            publisher.publish(messages)
        self._k.append(k)
        self._bpm.append(bpm)
        self._latency.append(latency_ms)
        self._bpm_untracked.append(untracked)

    def summary(self, wall_s: float) -> RunSummary:
        k = np.concatenate(self._k) if self._k else np.zeros(0, dtype=np.int64)
        bpm = np.concatenate(self._bpm) if self._bpm else np.zeros(0)
        latency = np.concatenate(self._latency) if self._latency else np.zeros(0)
        mae, n_labelled = mae_against_labels(k, bpm, self.source.labels_bpm)
        untracked = np.concatenate(self._bpm_untracked) if self._bpm_untracked else np.zeros(0)
        mae_untracked, _ = mae_against_labels(k, untracked, self.source.labels_bpm)
        counters = self.preprocessor.counters
        return RunSummary(
            windows=len(k),
            late=self.late,
            dropped_stale=self.dropped,
            skipped_gap=counters.skipped_windows,
            nan_samples=counters.nan_samples,
            backward_samples=counters.backward_samples,
            gaps=counters.gaps,
            latency_p50_ms=percentile(latency, 50),
            latency_p99_ms=percentile(latency, 99),
            latency_max_ms=float(latency.max()) if len(latency) else 0.0,
            mae_bpm=mae,
            mae_untracked_bpm=mae_untracked,
            labelled_windows=n_labelled,
            wall_s=wall_s,
        )

    def estimates(self) -> tuple[np.ndarray, np.ndarray]:
        """(k, bpm) of every window published so far (for tests and benchmarks)."""
        if not self._k:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(self._k), np.concatenate(self._bpm)


def warm_up_runtime(engine: InferenceEngine, rates: dict[str, float]) -> None:
    """Compile the Numba kernels (they depend on types, not rates) and run the model once. A live
    source calls this before connecting, so no device data waits behind the compiler."""
    spec = engine.spec
    probe = StreamPreprocessor(spec, rates)
    n = int(spec.window_s * 1.5 * rates[PPG])
    probe.push(Chunk(PPG, np.arange(n) / rates[PPG], np.zeros((n, 1))))
    if ACC in rates:
        m = int(spec.window_s * 1.5 * rates[ACC])
        probe.push(Chunk(ACC, np.arange(m) / rates[ACC], np.zeros((m, 3))))
    batch = probe.windows()
    engine.warm_up()
    if len(batch.k):
        probs = softmax(engine.run(batch.x))
        decode_probabilities(probs, spec.bins_bpm)
        Tracker(spec.bins_bpm).update(batch.k, probs)

"""The one runtime with many devices, in process: one model call per tick across devices, bounded
per-device state and queues, refusal beyond --max-devices, flat memory, fairness under a flood."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import numpy as np
import pytest

from ppg_stream.stream.core.chunk import ACC, PPG, Chunk
from ppg_stream.stream.core.engine import InferenceEngine
from ppg_stream.stream.runtime.pipeline import Runtime, RuntimeConfig, warm_up_runtime
from tests.serve_helpers import synthetic_recording

RATES = {PPG: 64.0, ACC: 32.0}
GROUPS = frozenset(RATES)


class CountingEngine(InferenceEngine):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.batches: list[int] = []

    def run(self, x):
        self.batches.append(len(x))
        return super().run(x)


class Recorder:
    def __init__(self):
        self.messages: list[dict] = []
        self.statuses: list[tuple[str, str]] = []

    def publish(self, messages):
        self.messages += messages

    def set_status(self, device, status):
        self.statuses.append((device, status))


@pytest.fixture(scope="module")
def engine():
    e = CountingEngine("student")
    warm_up_runtime(e, RATES)
    return e


@pytest.fixture(scope="module")
def recording():
    return synthetic_recording("r", 120.0, seed=5)


def _chunks(rec, t0: float, t1: float) -> list[Chunk]:
    out = []
    for group, t, x in ((PPG, rec.t_ppg, rec.ppg), (ACC, rec.t_acc, rec.acc)):
        sel = (t >= t0) & (t < t1)
        out.append(Chunk(group, t[sel], x[sel]))
    return out


def test_windows_ready_across_devices_go_to_one_model_call(engine, recording):
    recorder = Recorder()
    runtime = Runtime(engine, [recorder], RuntimeConfig(speed=None))
    states = [runtime.open_device(f"d{i}", GROUPS, RATES) for i in range(40)]
    for state in states:
        for chunk in _chunks(recording, 0.0, 9.0):  # one complete window (k = 0) per device
            runtime.offer(state, chunk, time.perf_counter())
    engine.batches.clear()
    runtime.tick()
    assert engine.batches == [40]  # forty devices, one onnxruntime call
    assert sorted(m["device"] for m in recorder.messages) == sorted(f"d{i}" for i in range(40))
    assert {m["window"] for m in recorder.messages} == {0}


def test_device_state_is_small_and_the_table_is_bounded(engine, recording):
    runtime = Runtime(engine, [Recorder()], RuntimeConfig(speed=None, max_devices=500))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(500):
        state = runtime.open_device(f"d{i}", GROUPS, RATES)
        for chunk in _chunks(recording, 0.0, 2.0):
            runtime.offer(state, chunk, time.perf_counter())
    runtime.tick()
    per_device = (tracemalloc.get_traced_memory()[0] - before) / 500
    tracemalloc.stop()
    assert per_device < 100 * 1024, f"{per_device / 1024:.1f} KiB per device"
    assert runtime.open_device("one-too-many", GROUPS, RATES) is None
    assert runtime.table.refused == 1 and len(runtime.table) == 500


def test_a_device_that_outpaces_the_runtime_loses_its_oldest_chunks_counted(engine, recording):
    runtime = Runtime(engine, [Recorder()], RuntimeConfig(speed=1.0, queue_chunks=8))
    state = runtime.open_device("fast", GROUPS, RATES)
    for i in range(20):
        runtime.offer(state, _chunks(recording, i, i + 1)[0], time.perf_counter())
    assert len(state.queue) == 8 and state.tally.dropped_chunks == 12


def test_a_service_behind_keeps_each_devices_newest_data_and_drops_the_older_counted(engine, recording):
    """Chunks sent over 40 s wait for a runtime that fell behind: the device keeps only the newest
    12 s (one window and two hops), the older are dropped and counted, and its next message is its newest
    window, not one from 40 s ago."""
    recorder = Recorder()
    runtime = Runtime(engine, [recorder], RuntimeConfig(speed=1.0))
    state = runtime.open_device("behind", GROUPS, RATES)
    sent0 = time.perf_counter() - 40.0
    for i in range(40):  # 1 s chunks, each stamped with when it was sent
        for chunk in _chunks(recording, i, i + 1):
            runtime.offer(state, chunk, sent0 + i)
    kept = len(state.queue)
    assert state.tally.dropped_chunks == 80 - kept and 20 <= kept <= 26  # ≈ 12 s of both channel groups
    runtime.tick()
    windows = [m["window"] for m in recorder.messages]
    assert windows and max(windows) == (40 - 8) // 2  # the newest complete window of the 40 s
    assert min(windows) >= (40 - 12) // 2  # nothing older than the kept 12 s


def test_a_replay_and_a_service_that_keeps_up_lose_nothing_to_the_backlog_rule(engine, recording):
    for speed in (None, 1.0):
        runtime = Runtime(engine, [Recorder()], RuntimeConfig(speed=speed))
        state = runtime.open_device("d", GROUPS, RATES)
        now = time.perf_counter()
        for i in range(30):  # 60 chunks: within the queue's 64
            for chunk in _chunks(recording, i, i + 1):
                runtime.offer(state, chunk, now - 30.0 + i if speed is None else now)  # as fast as possible / all fresh
        assert state.tally.dropped_chunks == 0 and len(state.queue) == 60


@pytest.mark.slow
def test_memory_stays_flat_over_thousands_of_windows(engine):
    """Nothing is kept per window: the second half of a long run allocates (almost) nothing new."""
    rec = synthetic_recording("long", 2 * 2400.0, seed=6)
    runtime = Runtime(engine, [Recorder()], RuntimeConfig(speed=None))
    runtime.publishers[0].publish = lambda messages: None  # a publisher that keeps nothing
    state = runtime.open_device("long", GROUPS, RATES, rec.labels_bpm)
    half = rec.t_ppg[-1] / 2

    def run(t0, t1):
        for a in np.arange(t0, t1, 30.0):
            for chunk in _chunks(rec, a, min(a + 30.0, t1)):
                runtime.offer(state, chunk, time.perf_counter())
            runtime.tick()

    run(0.0, 600.0)  # warm: arrays sized, caches filled
    tracemalloc.start()
    run(600.0, half)
    first = tracemalloc.get_traced_memory()[0]
    windows_first = runtime.windows_total
    run(half, rec.t_ppg[-1])
    grown = tracemalloc.get_traced_memory()[0] - first
    tracemalloc.stop()
    windows = runtime.windows_total - windows_first
    assert windows > 1000
    assert grown / windows < 16, f"{grown / windows:.1f} bytes kept per window"
    summary = runtime.summary(1.0)
    assert summary.windows == runtime.windows_total and summary.mae_bpm is not None


@pytest.mark.slow
async def test_a_flooding_device_does_not_make_the_others_late(engine, recording):
    recorder = Recorder()
    runtime = Runtime(engine, [recorder], RuntimeConfig(speed=1.0, queue_chunks=16, budget_ms=50.0))
    normal = [runtime.open_device(f"calm{i}", GROUPS, RATES) for i in range(5)]
    flood = runtime.open_device("flood", GROUPS, RATES)
    task = asyncio.create_task(runtime.run())
    start = time.perf_counter()
    duration = 12.0

    async def live(state):
        step = 0.5
        for a in np.arange(0.0, duration, step):
            await asyncio.sleep(max(0.0, start + a + step - time.perf_counter()))
            for chunk in _chunks(recording, a, a + step):
                runtime.offer(state, chunk, time.perf_counter())

    async def flooder():
        t = 0.0
        while time.perf_counter() - start < duration:
            for _ in range(50):  # 50 chunks of 8 s of signal per burst, as fast as the loop lets it
                for chunk in _chunks(recording, t % 100.0, t % 100.0 + 8.0):
                    runtime.offer(flood, Chunk(chunk.group, chunk.t + (t - t % 100.0), chunk.x), time.perf_counter())
                t += 8.0
            await asyncio.sleep(0.001)

    await asyncio.gather(*(live(s) for s in normal), flooder())
    await asyncio.sleep(0.2)
    runtime.stop()
    await task
    calm = [m for m in recorder.messages if m["device"] != "flood"]
    per_device = {}
    for m in calm:
        per_device.setdefault(m["device"], []).append(m["window"])
    expected = list(range(int((duration - 8.0) / 2.0) + 1))
    assert all(sorted(per_device[f"calm{i}"]) == expected for i in range(5)), per_device
    assert not any(m["late"] for m in calm), max(m["latency_ms"] for m in calm)
    assert flood.tally.dropped_chunks > 0  # its own queue overflowed, counted against it alone
    assert all(s.tally.dropped_chunks == 0 for s in normal)

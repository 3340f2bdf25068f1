"""Tickets through the one runtime (what the NATS intake relies on to acknowledge raw chunks): a
chunk's ticket is done only after the windows it completed were handed to the publishers; a
rebuild-only chunk restores state exactly without publishing; a ticketed chunk is never dropped.
And a stream first seen mid-way starts at its own first window."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ppg_stream.stream.core.chunk import ACC, PPG
from ppg_stream.stream.core.engine import InferenceEngine
from ppg_stream.stream.core.preprocess import StreamPreprocessor
from ppg_stream.stream.runtime.pipeline import Runtime, RuntimeConfig, warm_up_runtime
from tests.serve_helpers import synthetic_recording
from tests.test_runtime import Recorder, _chunks

RATES = {PPG: 64.0, ACC: 32.0}
GROUPS = frozenset(RATES)


class Ticket:
    def __init__(self, log: list, recorder: Recorder, end: float, rebuild: bool = False) -> None:
        self.log, self.recorder, self.end, self.rebuild = log, recorder, end, rebuild
        self.published_when_done: set[int] | None = None

    def done(self) -> None:
        assert self.published_when_done is None, "done twice"
        self.published_when_done = {m["window"] for m in self.recorder.messages}
        self.log.append(self)


@pytest.fixture(scope="module")
def engine():
    e = InferenceEngine("student")
    warm_up_runtime(e, RATES)
    return e


@pytest.fixture(scope="module")
def recording():
    return synthetic_recording("r", 60.0, seed=8)


def _run(engine, recording, rebuild_until: float) -> tuple[Recorder, list[Ticket], Runtime]:
    """1 s chunks, one tick per second of data, as an intake feeding the runtime would."""
    recorder, done = Recorder(), []
    runtime = Runtime(engine, [recorder], RuntimeConfig(speed=None))
    state = runtime.open_device("d", GROUPS)
    tickets = []
    for second in range(60):
        for chunk in _chunks(recording, second, second + 1.0):
            ticket = Ticket(done, recorder, second + 1.0, rebuild=second + 1.0 <= rebuild_until)
            tickets.append(ticket)
            runtime.offer(state, chunk, time.perf_counter(), RATES[chunk.group], ticket)
        runtime.tick()
    return recorder, tickets, runtime


def test_a_ticket_is_done_after_the_windows_its_chunk_completed_were_published(engine, recording):
    recorder, tickets, runtime = _run(engine, recording, rebuild_until=0.0)
    hop, window = engine.spec.hop_s, engine.spec.window_s
    assert [t.published_when_done is not None for t in tickets] == [True] * len(tickets)
    for ticket in tickets[1::2]:  # the ACC chunk of each second completes the windows ending by then
        complete = {k for k in range(len(recording.labels_bpm)) if k * hop + window <= ticket.end}
        assert complete <= ticket.published_when_done, ticket.end
    assert sorted(m["window"] for m in recorder.messages) == list(range(len(recording.labels_bpm)))
    assert runtime.rebuilt_windows == 0


def test_rebuild_only_chunks_restore_state_exactly_and_publish_nothing(engine, recording):
    full, _, _ = _run(engine, recording, rebuild_until=0.0)
    rebuilt, tickets, runtime = _run(engine, recording, rebuild_until=30.0)
    hop, window = engine.spec.hop_s, engine.spec.window_s
    live = {m["window"]: m for m in full.messages if m["window"] * hop + window > 30.0}
    got = {m["window"]: m for m in rebuilt.messages}
    assert got.keys() == live.keys() and min(got) == 12  # windows ending after 30 s only
    for k in got:  # same filters, ring and tracker as if the history had been live
        assert got[k]["bpm"] == live[k]["bpm"] and got[k]["confidence"] == live[k]["confidence"], k
    assert runtime.rebuilt_windows == len(full.messages) - len(got)
    assert runtime.totals().windows == len(got)
    assert all(t.published_when_done is not None for t in tickets)


def test_a_ticketed_chunk_is_never_dropped_from_a_full_queue(engine, recording):
    recorder, done = Recorder(), []
    runtime = Runtime(engine, [recorder], RuntimeConfig(speed=None, queue_chunks=2))
    state = runtime.open_device("d", GROUPS)
    for second in range(10):
        for chunk in _chunks(recording, second, second + 1.0):
            runtime.offer(state, chunk, time.perf_counter(), RATES[chunk.group], Ticket(done, recorder, second + 1.0))
    assert len(state.queue) == 20 and state.tally.dropped_chunks == 0
    runtime.tick()
    assert len(done) == 20 and [m["window"] for m in recorder.messages] == [0, 1]


def test_a_stream_first_seen_mid_way_starts_at_its_first_full_window(engine, recording):
    spec = engine.spec
    fresh = StreamPreprocessor(spec, RATES)
    late = StreamPreprocessor(spec, RATES)
    offset = 100.0  # the device's stream started 100 s before this service saw it
    for chunk in _chunks(recording, 0.0, 30.0):
        late.push(type(chunk)(chunk.group, chunk.t + offset, chunk.x))
    batch = late.windows()
    assert batch.k[0] == int(offset / spec.hop_s) and np.all(np.diff(batch.k) == 1)
    assert late.counters.skipped_windows == 0  # the 50 windows before it never existed for this service
    assert late.nbytes == fresh.nbytes  # the ring did not grow to reach back to window 0

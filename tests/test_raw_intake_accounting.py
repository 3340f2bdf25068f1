"""Raw intake in process (the real model, no broker): every raw chunk of a device accounted for
(received, duplicate, missing, dropped by overload), and a window's latency counted from when the
gateway sent the chunk that completed it (payload version 2), not from when the service read it."""

from __future__ import annotations

import dataclasses
import time

import pytest
from ppg_stream.stream.core.chunk import ACC, PPG
from ppg_stream.stream.core.engine import InferenceEngine
from ppg_stream.stream.core.raw_chunk import decode_raw_chunk, encode_raw_chunk
from ppg_stream.stream.runtime.pipeline import Runtime, RuntimeConfig, warm_up_runtime
from ppg_stream.stream.sources.raw_intake import RawIngest

from tests.serve_helpers import raw_payloads, synthetic_recording


class Recorder:
    def __init__(self):
        self.messages: list[dict] = []

    def publish(self, messages):
        self.messages += messages

    def set_status(self, device, status):
        pass


@pytest.fixture(scope="module")
def engine():
    e = InferenceEngine("student")
    warm_up_runtime(e, {PPG: 64.0, ACC: 32.0})
    return e


def _service(engine, **config):
    recorder = Recorder()
    runtime = Runtime(engine, [recorder], RuntimeConfig(speed=1.0, **config))
    return runtime, RawIngest(runtime, "acc"), recorder


def _stamped(payload: bytes, sent: float) -> bytes:
    return encode_raw_chunk(dataclasses.replace(decode_raw_chunk(payload), sent=sent))


async def test_every_chunk_is_received_duplicate_missing_or_dropped_per_device(engine):
    runtime, ingest, recorder = _service(engine)
    rec = synthetic_recording("dev", 20.0, seed=3)
    items = [(topic, payload) for _, topic, payload in raw_payloads(rec, "acc", "dev", chunk_s=0.25)]
    other = [(topic, payload) for _, topic, payload in raw_payloads(synthetic_recording("calm", 20.0, seed=4), "acc", "calm", chunk_s=0.25)]
    missing = {10, 11, 40}  # two holes of 0.25 s, bridged by the preprocessor, and one more: counted all the same
    sent = 0
    for i, (topic, payload) in enumerate(items):
        if i in missing:
            continue
        ingest.on_message(topic, payload, time.perf_counter())
        sent += 1
        if i in (3, 30):  # delivered twice (at least once)
            ingest.on_message(topic, payload, time.perf_counter())
            sent += 1
        runtime.tick()
    for topic, payload in other:
        ingest.on_message(topic, payload, time.perf_counter())
        runtime.tick()
    tally = runtime.table.get("dev").live_tally()
    assert (tally.received_chunks, tally.duplicate_chunks, tally.missing_chunks, tally.dropped_chunks) == (sent, 2, len(missing), 0)
    calm = runtime.table.get("calm").live_tally()
    assert (calm.received_chunks, calm.duplicate_chunks, calm.missing_chunks) == (len(other), 0, 0)
    windows = {m["window"] for m in recorder.messages if m["device"] == "dev"}
    assert windows == set(range(len(rec.labels_bpm)))  # the short holes were bridged: every window still came
    fields = runtime.summary(1.0).as_log_fields()
    assert fields["received_chunks"] == sent + len(other) and fields["missing_chunks"] == 3 and fields["duplicate_chunks"] == 2


async def test_a_device_that_outruns_the_service_loses_its_oldest_chunks_counted(engine):
    runtime, ingest, _ = _service(engine, queue_chunks=8)
    rec = synthetic_recording("fast", 20.0, seed=6)
    items = raw_payloads(rec, "acc", "fast", chunk_s=0.25)
    for _, topic, payload in items:  # all at once, no tick in between: the service is behind
        ingest.on_message(topic, payload, time.perf_counter())
    runtime.tick()
    tally = runtime.table.get("fast").live_tally()
    assert tally.received_chunks == len(items)
    assert tally.dropped_chunks == len(items) - 8 and tally.missing_chunks == 0
    assert runtime.summary(1.0).as_log_fields()["dropped_chunks"] == len(items) - 8


async def test_latency_counts_from_when_the_gateway_sent_the_chunk(engine):
    runtime, ingest, recorder = _service(engine)
    rec = synthetic_recording("q", 12.0, seed=8)
    items = raw_payloads(rec, "acc", "q", chunk_s=1.0)
    queued_s = 3.0  # the chunks waited this long in a broker before the service read them
    for _, topic, payload in items:
        ingest.on_message(topic, _stamped(payload, time.time() - queued_s), time.perf_counter())
    runtime.tick()
    assert recorder.messages
    newest = recorder.messages[-1]
    assert newest["late"] and newest["latency_ms"] >= queued_s * 1000
    # older windows of the same backlog were over the lag bound: dropped, counted, never published late
    assert runtime.totals().dropped_stale == len(rec.labels_bpm) - len(recorder.messages)

    runtime2, ingest2, recorder2 = _service(engine)
    for _, topic, payload in items:  # version 1 (no send time): counted from the read, as before
        ingest2.on_message(topic, payload, time.perf_counter())
    runtime2.tick()
    assert len(recorder2.messages) == len(rec.labels_bpm)
    assert all(m["latency_ms"] < queued_s * 1000 for m in recorder2.messages)


async def test_a_gateway_clock_ahead_of_the_service_never_makes_latency_negative(engine):
    runtime, ingest, recorder = _service(engine)
    rec = synthetic_recording("ahead", 12.0, seed=9)
    for _, topic, payload in raw_payloads(rec, "acc", "ahead", chunk_s=1.0):
        ingest.on_message(topic, _stamped(payload, time.time() + 60.0), time.perf_counter())
    runtime.tick()
    assert len(recorder.messages) == len(rec.labels_bpm)
    assert all(m["latency_ms"] >= 0 for m in recorder.messages)


async def test_a_backlog_that_waited_in_the_broker_is_shed_while_every_device_keeps_a_heart_rate(engine):
    """Chunks read long after they were sent, one per device per read as a broker delivers its backlog:
    each tick holds one window per device, all stale. The service drops them before the model (counted),
    but publishes every device's newest every 5 hops, so no device goes blank while it catches up."""
    runtime, ingest, recorder = _service(engine)
    recs = [synthetic_recording(f"d{i}", 40.0, seed=30 + i) for i in range(3)]
    per_device = [raw_payloads(r, "acc", r.subject, chunk_s=1.0) for r in recs]
    sent_at_start = time.time() - 100.0  # the streams started 100 s ago: every chunk waited 60 s or more
    for step in range(len(per_device[0])):
        for items in per_device:
            end, topic, payload = items[step]
            ingest.on_message(topic, _stamped(payload, sent_at_start + end), time.perf_counter())
        runtime.tick()
    n = len(recs[0].labels_bpm)
    for rec in recs:
        published = [m["window"] for m in recorder.messages if m["device"] == rec.subject]
        assert published == list(range(0, n, 5))
    assert all(m["late"] for m in recorder.messages)
    assert runtime.totals().dropped_stale == sum(n - len(range(0, n, 5)) for _ in recs)

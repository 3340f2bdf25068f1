"""A device's queued raw chunks go to the Numba kernel as one batch (`StreamPreprocessor.push_queue`):
the windows, their numbers, the counters and which chunk completed each window must be exactly those of
pushing the chunks one by one, through holes, bad samples, multi-channel PPG, rate changes and chunks
longer than a quarter of the ring; and the runtime publishes the same messages whether it takes each
chunk as it comes or a whole backlog in one tick."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from ppg_stream.stream.core.chunk import ACC, PPG
from ppg_stream.stream.core.engine import InferenceEngine
from ppg_stream.stream.core.preprocess import StreamPreprocessor
from ppg_stream.stream.core.raw_chunk import RawHeader, decode_raw_chunk, decode_raw_header, encode_raw_chunk
from ppg_stream.stream.runtime.pipeline import Runtime, RuntimeConfig, warm_up_runtime
from ppg_stream.stream.sources.raw_intake import RawIngest

from tests.serve_helpers import raw_payloads, synthetic_recording

GROUPS = frozenset({PPG, ACC})


@pytest.fixture(scope="module")
def engine():
    e = InferenceEngine("student")
    warm_up_runtime(e, {PPG: 64.0, ACC: 32.0})
    return e


def _headers(chunk_s: float, seconds: float = 40.0, seed: int = 5) -> list[RawHeader]:
    rec = synthetic_recording("dev", seconds, seed=seed)
    return [decode_raw_header(payload) for _, _, payload in raw_payloads(rec, "t", "dev", chunk_s=chunk_s)]


def _edit(h: RawHeader, **fields) -> RawHeader:
    return decode_raw_header(encode_raw_chunk(dataclasses.replace(decode_raw_chunk(h.payload), **fields)))


def _awkward(headers: list[RawHeader]) -> list[RawHeader]:
    """Holes (one bridged, one long enough to reset the filter), a chunk with NaN samples, a PPG chunk
    with two channels (averaged), and a stretch at another PPG rate (the filter redesigned)."""
    out = []
    for i, h in enumerate(headers):
        if i in (0, 20, 60, 61, 62, 63, 64):  # the first PPG chunk (the stream starts with ACC), 0.25 s and 1.25 s of PPG or ACC missing
            continue
        raw = decode_raw_chunk(h.payload)
        if i == 30:
            samples = raw.samples.copy()
            samples[1, :] = np.nan
            h = _edit(h, samples=samples)
        elif i == 40 and raw.group == PPG:
            h = _edit(h, samples=np.hstack([raw.samples, raw.samples * 0.5 + 1.0]))
        elif 90 <= i < 110 and raw.group == PPG:  # announced as 50 Hz: more than the 10 % that keeps a filter
            h = _edit(h, rate_hz=50.0)
        out.append(h)
    return out


def _one_by_one(spec, headers: list[RawHeader]) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """The runtime's old way: each chunk (cut in pieces if long) pushed, then its windows collected."""
    pre = StreamPreprocessor(spec, None, groups=GROUPS)
    out, out_k = np.zeros((256, len(spec.channels), spec.window_samples), np.float32), np.zeros(256, np.int64)
    ks, xs, by = [], [], []
    for i, h in enumerate(headers):
        for piece in pre.pieces(h.to_chunk()):
            pre.push(piece, h.rate_hz)
            while n := pre.collect_into(out, out_k):
                ks.append(out_k[:n].copy())
                xs.append(out[:n].copy())
                by += [i] * n
    return np.concatenate(ks), np.concatenate(xs), np.array(by), (pre.counters, pre.nbytes)


def _batched(spec, headers: list[RawHeader], sizes: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    pre = StreamPreprocessor(spec, None, groups=GROUPS)
    out, out_k = np.zeros((256, len(spec.channels), spec.window_samples), np.float32), np.zeros(256, np.int64)
    ks, xs, by = [], [], []
    start = 0
    while start < len(headers):
        batch = headers[start : start + sizes[len(ks) % len(sizes)]]
        for _ in pre.push_queue(batch, [h.rate_hz for h in batch]):
            while n := pre.collect_into(out, out_k):
                ks.append(out_k[:n].copy())
                xs.append(out[:n].copy())
                by.append(np.array(pre.completed_by(out_k[:n])) + start)
        start += len(batch)
    return np.concatenate(ks), np.concatenate(xs), np.concatenate(by), (pre.counters, pre.nbytes)


@pytest.mark.parametrize("chunk_s", [0.25, 1.0, 10.0])  # 10 s: longer than a quarter of the 32 s ring, fed in pieces
def test_a_batch_of_raw_chunks_gives_the_windows_of_pushing_them_one_by_one(engine, chunk_s):
    headers = _awkward(_headers(chunk_s, seconds=60.0)) if chunk_s < 10 else _headers(chunk_s, seconds=60.0)
    k1, x1, by1, c1 = _one_by_one(engine.spec, headers)
    for sizes in ([len(headers)], [1, 7, 2, 30], [16]):
        k2, x2, by2, c2 = _batched(engine.spec, headers, sizes)
        assert k2.tolist() == k1.tolist(), sizes
        assert np.array_equal(x2.view(np.uint32), x1.view(np.uint32)), sizes  # bit for bit, NaN patterns included
        assert by2.tolist() == by1.tolist(), sizes  # the same chunk completed each window (its arrival is the window's)
        assert c2 == c1, sizes  # counters, and the ring's size: a backlog of 60 s does not grow it
    if chunk_s < 10:
        assert c1[0].gaps > 0 and c1[0].nan_samples > 0 and c1[0].rate_changes > 0  # the awkward parts were exercised
    assert len(k1) >= 15


def test_the_runtime_publishes_the_same_whether_chunks_come_one_per_tick_or_as_a_backlog(engine):
    payloads = [h.payload for h in _awkward(_headers(0.25, seconds=60.0, seed=8))]
    runs = []
    for per_tick in (1, len(payloads)):
        messages: list[dict] = []

        class Sink:
            def publish(self, batch):
                messages.extend(batch)

            def set_status(self, device, status):
                pass

        runtime = Runtime(engine, [Sink()], RuntimeConfig(speed=None, queue_chunks=10_000))
        ingest = RawIngest(runtime, "t")
        for i, payload in enumerate(payloads):
            ingest.on_message("t/dev/raw", payload, time.perf_counter())
            if (i + 1) % per_tick == 0:
                runtime.tick()
        runtime.tick()
        runs.append(([(m["window"], m["bpm"], m["confidence"], m["reliable"]) for m in messages], runtime.totals()))
    (one, tally_one), (backlog, tally_backlog) = runs
    assert len(one) >= 20 and backlog == one
    counts_one, counts_backlog = dataclasses.asdict(tally_one), dataclasses.asdict(tally_backlog)
    counts_one.pop("late"), counts_backlog.pop("late")  # latency differs: the backlog waited for its tick
    assert counts_backlog == counts_one and counts_one["received_chunks"] == len(payloads)

"""The raw-chunk payload: round trips, every defect named, and nothing but RawChunkError from junk."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppg_stream.stream.core.chunk import ACC, PPG
from ppg_stream.stream.core.raw_chunk import HEADER, HEADER_SIZE, HEADER_V2, HEADER_V2_SIZE, RawChunk, RawChunkError, decode_raw_chunk, encode_raw_chunk
from ppg_stream.stream.sources.raw_gateway import chunk_rate

BOTH = frozenset({PPG, ACC})


def _chunk(group=PPG, n=16, channels=1, rate=64.0, t0=2.5, seq=7, stream_id=0xDEADBEEF, groups=BOTH):
    x = np.arange(n * channels, dtype=np.float32).reshape(n, channels) / 10
    return RawChunk(group, groups, stream_id, seq, rate, t0, x)


def test_round_trip_keeps_every_field_and_sample_times():
    raw = _chunk(ACC, n=8, channels=3, rate=32.0, t0=10.0)
    payload = encode_raw_chunk(raw)
    assert len(payload) == HEADER_SIZE + 8 * 3 * 4  # 32-byte header + float32 samples
    back = decode_raw_chunk(payload)
    assert (back.group, back.groups, back.stream_id, back.seq, back.rate_hz, back.t0) == (ACC, BOTH, 0xDEADBEEF, 7, 32.0, 10.0)
    np.testing.assert_array_equal(back.samples, raw.samples)
    np.testing.assert_allclose(back.times(), 10.0 + np.arange(8) / 32.0)


def test_version_2_carries_the_send_time_and_version_1_is_still_read():
    raw = RawChunk(PPG, BOTH, 5, 6, 64.0, 3.0, np.ones((4, 1), np.float32), sent=1_765_000_000.25)
    payload = encode_raw_chunk(raw)
    assert payload[0] == 2 and len(payload) == HEADER_V2_SIZE + 4 * 4
    assert struct.unpack_from("<d", payload, 32) == (1_765_000_000.25,)
    back = decode_raw_chunk(payload)
    assert (back.seq, back.t0, back.sent) == (6, 3.0, 1_765_000_000.25)
    np.testing.assert_array_equal(back.samples, raw.samples)
    old = encode_raw_chunk(RawChunk(PPG, BOTH, 5, 6, 64.0, 3.0, np.ones((4, 1), np.float32)))  # sent unknown: version 1
    assert old[0] == 1 and len(old) == HEADER_SIZE + 4 * 4
    assert decode_raw_chunk(old).sent == 0.0 and decode_raw_chunk(old).seq == 6


def test_header_layout_is_the_documented_one():
    payload = encode_raw_chunk(_chunk(PPG, n=2, channels=1, rate=64.0, t0=1.0, seq=3, stream_id=9, groups=frozenset({PPG})))
    assert payload[:4] == bytes([1, 1, 1, 1])  # version 1, group PPG, 1 channel, groups mask = PPG only
    assert struct.unpack_from("<IIIdd", payload, 4) == (9, 3, 2, 64.0, 1.0)
    assert np.frombuffer(payload[32:], "<f4").tolist() == pytest.approx([0.0, 0.1])


def _with_header(**fields):
    base = dict(version=1, group=1, channels=1, mask=3, stream_id=1, seq=0, n=4, rate=64.0, t0=0.0)
    base.update(fields)
    header = HEADER.pack(*base.values())
    return header + b"\x00" * (4 * base["n"] * base["channels"])


def _v2(sent=1.7e9, n=4):
    return HEADER_V2.pack(2, 1, 1, 3, 1, 0, n, 64.0, 0.0, sent) + b"\x00" * (4 * n)


@pytest.mark.parametrize(
    "payload, fragment",
    [
        (b"\x01\x01", "shorter than the 32-byte header"),
        (_with_header(version=3), "unknown payload version 3"),
        (_with_header(version=0), "unknown payload version 0"),
        (_v2(sent=-1.0), "sent time -1.0"),
        (_v2(sent=float("nan")), "sent time nan"),
        (_v2()[:36], "shorter than the 40-byte header of version 2"),
        (_v2()[:-1], "header says 4 samples"),
        (_with_header(group=9), "unknown channel group 9"),
        (_with_header(group=2, channels=2), "ACC chunk with 2 channels"),
        (_with_header(channels=0), "PPG chunk with 0 channels"),
        (_with_header(mask=2), "groups mask"),
        (_with_header(n=0), "sample count 0"),
        (_with_header(n=70000), "sample count 70000 outside 1-16384"),
        (b"\x01" * 600_000, "exceeds the"),
        (_with_header(rate=0.0), "rate 0.0 Hz"),
        (_with_header(rate=float("nan")), "rate nan Hz"),
        (_with_header(t0=-1.0), "first-sample time -1.0"),
        (_with_header(t0=float("inf")), "first-sample time inf"),
        (_with_header()[:-1], "header says 4 samples"),
        (_with_header() + b"\x00", "header says 4 samples"),
    ],
)
def test_every_defect_is_named(payload, fragment):
    with pytest.raises(RawChunkError, match=None) as e:
        decode_raw_chunk(payload)
    assert fragment in str(e.value)


def test_non_finite_samples_are_admitted_for_the_preprocessor_to_count():
    raw = _chunk()
    samples = raw.samples.copy()
    samples[3, 0] = np.nan
    samples[4, 0] = np.inf
    back = decode_raw_chunk(encode_raw_chunk(RawChunk(PPG, BOTH, 1, 1, 64.0, 0.0, samples)))
    assert np.isnan(back.samples[3, 0]) and np.isinf(back.samples[4, 0])


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_junk_raises_only_raw_chunk_error(data):
    try:
        decode_raw_chunk(data)
    except RawChunkError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([(PPG, 1), (PPG, 3), (ACC, 3)]),
    st.integers(1, 300),
    st.floats(1.0, 2000.0),
    st.floats(0.0, 1e6),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.data(),
)
@pytest.mark.slow
def test_fuzzed_headers_round_trip_or_fail_cleanly(group_channels, n, rate, t0, seq, stream_id, data):
    group, channels = group_channels
    x = np.asarray(data.draw(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=n * channels, max_size=n * channels)), dtype=np.float32)
    raw = RawChunk(group, BOTH, stream_id, seq, rate, t0, x.reshape(n, channels))
    back = decode_raw_chunk(encode_raw_chunk(raw))
    assert (back.seq, back.stream_id, back.rate_hz, back.t0) == (seq, stream_id, rate, t0)
    np.testing.assert_array_equal(back.samples.view(np.uint32), raw.samples.view(np.uint32))  # NaN payloads too
    # a flipped byte anywhere either still decodes or is refused with RawChunkError
    payload = bytearray(encode_raw_chunk(raw))
    i = data.draw(st.integers(0, len(payload) - 1))
    payload[i] ^= data.draw(st.integers(1, 255))
    try:
        decode_raw_chunk(bytes(payload))
    except RawChunkError:
        pass


def test_gateway_rate_is_nominal_on_the_grid_and_measured_off_it():
    t = np.arange(100) / 55.0
    assert chunk_rate(t, 55.0) == 55.0
    slow = np.arange(100) / 52.0  # a device advertising 55 Hz that runs at 52 Hz
    assert chunk_rate(slow, 55.0) == pytest.approx(52.0)
    assert chunk_rate(t[:1], 55.0) == 55.0

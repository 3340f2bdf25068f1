"""Fuzzing every BLE parser: arbitrary bytes (and arbitrary bytes behind a valid header, for every frame type
decoded) only ever raise the project's own BleParseError, and what does come out has the promised shape.

A fixed, small budget: each property runs a fixed number of derandomized examples (the same ones on every
run), so the suite's time is bounded and a failure reproduces.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ppg_stream.stream.sources.ble.connection import DATA, BleConnection, Event
from ppg_stream.stream.sources.ble.errors import BleParseError, DeviceError
from ppg_stream.stream.sources.ble.heart_rate import parse_heart_rate
from ppg_stream.stream.sources.ble.pmd_control import Measurement, parse_control_response, parse_device_message, parse_features, parse_settings, raise_for_error
from ppg_stream.stream.sources.ble.pmd_delta import decode_delta
from ppg_stream.stream.sources.ble.pmd_frames import FRAME_LAYOUTS, decode_frame, parse_frame_header
from ppg_stream.stream.sources.ble.pmd_session import StreamSettings
from ppg_stream.stream.sources.ble.pmd_signals import carries_signal, signal_of
from ppg_stream.stream.sources.ble.pmd_source import DATA_TAG, PmdSource
from ppg_stream.stream.sources.ble.pmd_time import FrameTiming, sdk_sample_times
from tests.fake_ble import FakeBackend, ScriptedDevice

BUDGET = settings(max_examples=200, deadline=None, derandomize=True)
TS = (7_000_000_000).to_bytes(8, "little")
factors = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from([1.0, 0.5, 2.44e-4]))


@BUDGET
@given(raw=st.binary(max_size=300), factor=factors)
def test_any_bytes_as_a_frame(raw, factor):
    try:
        frame = decode_frame(raw, factor)
    except BleParseError:
        return
    assert frame.samples.ndim == 2 and frame.samples.shape[1] == frame.layout.channels and len(frame.samples) >= 1
    assert frame.samples.dtype == np.int64


@BUDGET
@given(key=st.sampled_from(sorted(FRAME_LAYOUTS)), body=st.binary(max_size=240), factor=factors)
def test_any_payload_behind_every_valid_frame_header(key, body, factor):
    measurement, frame_type, compressed = key
    data = bytes([measurement]) + TS + bytes([frame_type | (0x80 if compressed else 0)]) + body
    try:
        frame = decode_frame(data, factor)
    except BleParseError:
        return
    if carries_signal(frame):
        x = signal_of(frame)
        assert x.shape[0] == len(frame.samples) and np.isfinite(x).all()


@BUDGET
@given(raw=st.binary(max_size=40))
def test_any_bytes_as_a_frame_header(raw):
    try:
        header = parse_frame_header(raw)
    except BleParseError:
        return
    assert 0 <= header.frame_type < 0x80 and header.payload == raw[10:]


@BUDGET
@given(body=st.binary(max_size=200), channels=st.integers(0, 30), bits=st.integers(0, 40))
def test_any_bytes_as_delta_frames(body, channels, bits):
    try:
        samples = decode_delta(body, channels, bits)
    except BleParseError:
        return
    assert samples.shape[1] == channels and (np.abs(samples) <= 2**31).all()  # 32-bit values, as the SDK's


@BUDGET
@given(raw=st.binary(max_size=60))
def test_any_bytes_as_control_point_messages(raw):
    for parse in (parse_features, parse_settings, parse_heart_rate, parse_device_message):
        try:
            parse(raw)
        except BleParseError:
            pass
    try:
        response = parse_control_response(raw)
    except BleParseError:
        return
    try:
        raise_for_error(response)
    except DeviceError as e:
        assert "\n" not in str(e)


@BUDGET
@given(
    previous=st.integers(0, 2**64 - 1),
    timestamp=st.integers(0, 2**64 - 1),
    n=st.integers(-2, 300),
    rate=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 500)),
)
def test_any_numbers_as_sample_times(previous, timestamp, n, rate):
    try:
        t = sdk_sample_times(previous, timestamp, n, rate)
    except BleParseError:
        return
    assert len(t) == n and t[-1] == float(timestamp) and t[0] > 0 and np.all(np.diff(t) >= 0)


@BUDGET
@given(
    frames=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2**63), st.integers(1, 60)), max_size=12),
    nominal=st.floats(0.5, 500),
)
def test_any_frame_sequence_gets_times_or_a_parse_error(frames, nominal):
    timing = FrameTiming(nominal)
    for frame_type, timestamp, n in frames:
        try:
            t = timing.times(frame_type, timestamp, n)
        except BleParseError:
            continue
        assert len(t) == n and t[-1] == float(timestamp) and np.all(np.diff(t) >= 0)
        assert math.isfinite(timing.period_ns) and timing.period_ns > 0


@BUDGET
@given(
    frames=st.lists(
        st.tuples(st.sampled_from(sorted(FRAME_LAYOUTS)), st.integers(0, 2**64 - 1), st.binary(max_size=120)),
        max_size=8,
    )
)
def test_any_frames_through_the_pmd_source_give_chunks_or_are_counted(frames):
    """The consumer's whole path (decode, FACTOR, timing, clock, signals) on arbitrary frames: a chunk, a
    counted malformed frame, or (an undecodable PPG type before any PPG) the one-line refusal; nothing else."""
    source = _fuzz_source()
    for i, ((measurement, frame_type, compressed), ts, body) in enumerate(frames):
        data = bytes([measurement]) + ts.to_bytes(8, "little") + bytes([frame_type | (0x80 if compressed else 0)]) + body
        chunk = source._event_to_chunk(Event(DATA, DATA_TAG, data, 100.0 + i, 100.0 + i))
        if chunk is not None:
            assert len(chunk.t) == len(chunk.x) and np.all(np.isfinite(chunk.t)) and np.all(np.diff(chunk.t) >= 0)


def _fuzz_source() -> PmdSource:
    conn = BleConnection(FakeBackend(ScriptedDevice()), "A0:9E:1A:00:11:22")
    source = PmdSource(conn, "fuzz", frozenset({Measurement.PPG, Measurement.ACC}))
    source.streams = {Measurement.PPG: StreamSettings(1, 55.0, 0.5, {}), Measurement.ACC: StreamSettings(2, 52.0, 2.44e-4, {})}
    source.timing = {Measurement.PPG: FrameTiming(55.0), Measurement.ACC: FrameTiming(52.0)}
    return source

"""PMD frames → stream chunks: units, ambient subtraction, FACTOR, and time that never runs backwards."""

from __future__ import annotations

import numpy as np

from stream.ble.connection import BleConnection
from stream.ble.pmd_control import Measurement
from stream.ble.pmd_frames import parse_frame
from stream.ble.pmd_session import StreamSettings
from stream.ble.pmd_source import PmdSource
from stream.chunk import ACC, PPG
from tests.fake_ble import FakeBackend, ScriptedDevice
from tests.pmd_encode import encode_compressed, encode_raw


def _source() -> PmdSource:
    conn = BleConnection(FakeBackend(ScriptedDevice()), "A0:9E:1A:00:11:22")
    source = PmdSource(conn, "dev", frozenset({Measurement.PPG, Measurement.ACC}))
    source.streams = {Measurement.PPG: StreamSettings(1, 55.0, 0.5, {}), Measurement.ACC: StreamSettings(2, 52.0, 1.0, {})}
    return source


def test_ppg_is_the_mean_of_the_photodiodes_minus_ambient_times_the_factor_and_acc_is_in_g():
    source = _source()
    ppg = parse_frame(encode_raw(1, 0, 7_000_000_000, [[110, 120, 130, 20], [210, 220, 230, 20]], 3))
    chunk = source.frame_to_chunk(ppg, arrival_s=100.0)
    assert chunk.group == PPG and chunk.x.shape == (2, 1)
    np.testing.assert_allclose(chunk.x[:, 0], [0.5 * (120 - 20), 0.5 * (220 - 20)])
    acc = parse_frame(encode_compressed(2, 1, 7_000_000_000, [[1000, -500, 0], [980, -510, 4]], 2))
    chunk = source.frame_to_chunk(acc, arrival_s=100.0)
    assert chunk.group == ACC
    np.testing.assert_allclose(chunk.x, [[1.0, -0.5, 0.0], [0.98, -0.51, 0.004]])


def test_a_frame_that_arrives_unusually_fast_does_not_make_time_run_backwards():
    source = _source()
    n, step_ns = 28, int(1e9 / 55)
    times = []
    for i, latency in enumerate([0.080, 0.075, 0.002, 0.040]):  # the third frame came through almost at once
        last_ns = 7_000_000_000 + (i + 1) * n * step_ns
        frame = parse_frame(encode_raw(1, 0, last_ns, [[1, 1, 1, 0]] * n, 3))
        chunk = source.frame_to_chunk(frame, arrival_s=last_ns * 1e-9 + 50.0 + latency)
        times.append(chunk.t)
    t = np.concatenate(times)
    assert np.all(np.diff(t) > 0) and np.diff(t).max() < 2 / 55  # neither backwards nor a hole
    assert t[0] == 0.0 and abs(t[-1] - (4 * n - 1) / 55) < 0.1  # stream time starts at the first sample


def test_one_frame_held_up_by_the_radio_leaves_no_hole_and_no_shift():
    source = _source()
    n, step_ns = 28, int(1e9 / 55)
    times = []
    for i in range(12):
        last_ns = 7_000_000_000 + (i + 1) * n * step_ns
        latency = 1.3 if i == 5 else 0.02  # frame 5 arrives 1.3 s late (a radio stall)
        frame = parse_frame(encode_raw(1, 0, last_ns, [[1, 1, 1, 0]] * n, 3))
        times.append(source.frame_to_chunk(frame, arrival_s=last_ns * 1e-9 + 50.0 + latency).t)
    t = np.concatenate(times)
    assert np.diff(t).max() < 2 / 55 and abs(t[-1] - (12 * n - 1) / 55) < 0.01
    assert source.clock.realignments == 0

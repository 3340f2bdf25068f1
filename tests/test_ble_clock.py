"""Per-sample times from PMD frame timestamps (the device's real rate, lost frames, clock jumps) and the
sensor→host clock alignment with drift."""

from __future__ import annotations

import numpy as np
import pytest

from ppg_stream.stream.sources.ble.errors import BleParseError
from ppg_stream.stream.sources.ble.pmd_time import FrameTiming, sdk_sample_times
from ppg_stream.stream.sources.ble.sensor_clock import SensorClock

S = 1_000_000_000


def test_first_frame_uses_the_advertised_rate_back_from_its_last_sample():
    t = FrameTiming(50.0).times(0, 10 * S, 5)
    np.testing.assert_allclose(t, 10e9 - 20e6 * np.array([4, 3, 2, 1, 0]))


def test_a_device_slower_than_it_says_is_timed_by_its_own_timestamps():
    # advertised 135 Hz, really 55 Hz (Verity Sense 1.1.5 to 2.0.x): 28 samples span 28/55 s, not 28/135 s
    timing = FrameTiming(135.0)
    frames = [timing.times(0, 7 * S + k * 28 * S // 55, 28) for k in range(1, 6)]
    assert timing.rate_differs() and abs(timing.real_hz - 55.0) < 0.01
    later = np.concatenate(frames[1:])
    np.testing.assert_allclose(np.diff(later), 1e9 / 55, atol=2)  # every sample 1/55 s apart, frame joins included
    # ...and those are exactly the SDK's numbers: spread evenly since the previous frame
    np.testing.assert_array_equal(frames[2], sdk_sample_times(7 * S + 2 * 28 * S // 55, 7 * S + 3 * 28 * S // 55, 28, 135.0))


def test_a_device_at_its_advertised_rate_is_not_reported():
    timing = FrameTiming(55.0)
    for k in range(1, 6):
        timing.times(0, 7 * S + k * 28 * S // 55 + (k % 2) * 1000, 28)
    assert not timing.rate_differs()


def test_lost_frames_leave_a_hole_instead_of_stretching_samples_over_it():
    timing = FrameTiming(55.0)
    for k in range(1, 5):
        timing.times(0, 7 * S + k * 28 * S // 55, 28)
    after_gap = timing.times(0, 7 * S + 9 * 28 * S // 55, 28)  # four frames lost
    np.testing.assert_allclose(np.diff(after_gap), 1e9 / 55, atol=2)
    assert after_gap[0] > 7 * S + 8 * 28 * S // 55  # the hole stays before the frame


def test_a_clock_jump_backwards_keeps_the_real_period():
    timing = FrameTiming(55.0)
    for k in range(1, 4):
        timing.times(0, 70 * S + k * 28 * S // 55, 28)
    t = timing.times(0, 9 * S, 28)  # the device restarted its clock
    assert t[-1] == 9 * S
    np.testing.assert_allclose(np.diff(t), 1e9 / 55, atol=2)


def test_previous_timestamps_are_per_frame_type_and_forgotten_on_reset_but_the_rate_is_kept():
    timing = FrameTiming(135.0)
    for k in range(1, 4):
        timing.times(0, 7 * S + k * 28 * S // 55, 28)
    assert timing.previous(0) == 7 * S + 3 * 28 * S // 55 and timing.previous(4) == 0
    timing.reset()
    assert timing.previous(0) == 0
    first = timing.times(0, 20 * S, 28)  # a first frame again, timed with the real rate the device showed
    np.testing.assert_allclose(np.diff(first), 1e9 / 55, atol=2)


def test_impossible_rates_and_times_are_clear_errors():
    with pytest.raises(BleParseError, match="sample rate 0 Hz"):
        FrameTiming(0.0)
    with pytest.raises(BleParseError, match="before 2000-01-01"):
        FrameTiming(55.0).times(0, 100_000, 28)


def test_clock_alignment_follows_drift_and_ignores_latency_jitter():
    rng = np.random.default_rng(3)
    clock = SensorClock()
    true_offset = 12.345  # the host clock reads this much more than the sensor at t = 0
    drift = 150e-6  # the sensor runs 150 ppm fast
    errors = []
    for i in range(1, 3000):  # 10 minutes of frames every 0.2 s
        host_true = i * 0.2
        sensor_ns = int((host_true - true_offset) * (1 + drift) * 1e9 + 7e9)
        arrival = host_true + rng.uniform(0.005, 0.060)  # radio latency, always positive
        clock.observe(sensor_ns, arrival)
        errors.append(clock.to_host(np.array([float(sensor_ns)]))[0] - host_true)
    errors = np.array(errors[100:])
    # without drift tracking the error would grow to 150 ppm × 600 s = 90 ms; latency alone spans 55 ms
    assert np.all(errors > 0) and np.all(errors < 0.025), (errors.min(), errors.max())
    assert clock.realignments == 0


def test_a_sensor_clock_jump_realigns():
    clock = SensorClock()
    clock.observe(1_000_000_000, 100.0)
    clock.observe(1_200_000_000, 100.21)
    clock.observe(900_000_000_000, 100.42)  # the device reset its clock
    assert clock.realignments == 1
    assert abs(clock.to_host(np.array([900e9]))[0] - 100.42) < 1e-6

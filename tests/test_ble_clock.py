"""Per-sample times from PMD frame timestamps, and the sensor→host clock alignment with drift."""

from __future__ import annotations

import numpy as np

from stream.ble.sensor_clock import SensorClock, spread_sample_times


def test_first_frame_uses_the_nominal_rate_back_from_its_last_sample():
    t = spread_sample_times(None, 10_000_000_000, 5, 50.0)
    np.testing.assert_allclose(t, 10e9 - 20e6 * np.array([4, 3, 2, 1, 0]))


def test_later_frames_spread_evenly_since_the_previous_one_so_a_slow_device_is_seen_as_slow():
    # asked 55 Hz, the device really runs at 52 Hz: 26 samples span 0.5 s
    t = spread_sample_times(1_000_000_000, 1_500_000_000, 26, 55.0)
    assert np.allclose(np.diff(t), 0.5e9 / 26) and t[-1] == 1.5e9
    assert t[0] > 1e9


def test_lost_frames_or_a_clock_jump_fall_back_to_the_nominal_rate():
    lost = spread_sample_times(0, 3_000_000_000, 10, 10.0)  # 10 samples cannot span 3 s at 10 Hz
    backwards = spread_sample_times(5_000_000_000, 4_000_000_000, 10, 10.0)
    for t in (lost, backwards):
        assert np.allclose(np.diff(t), 1e8)


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

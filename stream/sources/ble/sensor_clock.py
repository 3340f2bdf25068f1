"""From sensor time to the host's stream clock.

The sensor clock may never have been set, so it is aligned to the host clock at the first frame;
after that the offset follows the lower envelope of (arrival − sensor time): it drops at once when a
frame arrives sooner than predicted, and rises at most `max_slew` s/s (clock drift), so radio latency
jitter does not move the time axis. Where each sample sits in sensor time is `pmd_time.py`'s job.
"""

from __future__ import annotations

import numpy as np

NS = 1e-9


class SensorClock:
    """Maps sensor nanoseconds to host stream seconds; one per device, so PPG and ACC stay aligned."""

    def __init__(self, max_slew: float = 1e-3, realign_s: float = 1.0) -> None:
        self.max_slew = max_slew
        self.realign_s = realign_s
        self.offset_s: float | None = None
        self.realignments = 0
        self._last_sensor_s = 0.0
        self._last_arrival_s = 0.0

    def reset(self) -> None:
        """Forget the alignment (after a reconnect the device may have restarted its clock)."""
        self.offset_s = None

    def observe(self, sensor_last_ns: int, arrival_s: float) -> float:
        """Update with a frame whose last sample (sensor time) arrived at `arrival_s`; returns the offset."""
        sensor_s = sensor_last_ns * NS
        d = arrival_s - sensor_s
        sensor_step = sensor_s - self._last_sensor_s
        arrival_step = arrival_s - self._last_arrival_s
        # only the sensor clock itself jumping (reset, or set) realigns; a frame that arrives late is latency
        jumped = sensor_step < -self.realign_s or sensor_step > max(arrival_step, 0.0) + self.realign_s
        if self.offset_s is None or jumped:
            if self.offset_s is not None:
                self.realignments += 1
            self.offset_s = d
        elif d < self.offset_s:
            self.offset_s = d
        else:
            elapsed = max(sensor_s - self._last_sensor_s, 0.0)
            self.offset_s += min(d - self.offset_s, self.max_slew * elapsed)
        self._last_sensor_s = sensor_s
        self._last_arrival_s = arrival_s
        return self.offset_s

    def to_host(self, sensor_ns: np.ndarray) -> np.ndarray:
        if self.offset_s is None:
            raise RuntimeError("SensorClock.to_host before any observe()")
        return sensor_ns * NS + self.offset_s

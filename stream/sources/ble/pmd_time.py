"""Sample times of a PMD frame, from the sensor timestamp of its last sample.

`sdk_sample_times` is Polar SDK's rule (PmdTimeStampUtils), number for number: with no previous frame
the samples are spread back from the last one at the nominal rate; after that they are spread evenly
since the previous frame's timestamp, whatever the rate the device advertised (some firmware streams
at another rate than it says). Its errors are the SDK's, as clear BleParseErrors: a frame with no
samples, no previous frame and no sample rate, or a first sample at or before 2000-01-01.

`FrameTiming` is what a live stream uses: the previous timestamp per frame type (the SDK keeps it per
(measurement, frame type) and forgets it when a stream stops), and the device's real sample period
learnt from its own timestamps. It follows the SDK, except where a span cannot be a run of
consecutive frames (lost frames, a clock jump): there the samples keep the device's real period, back
from the frame's timestamp, and the hole stays a hole instead of being stretched over.
"""

from __future__ import annotations

from collections import deque
from statistics import median

import numpy as np

from .errors import BleParseError

NS_PER_S = 1_000_000_000
SPAN_TOLERANCE = 1.25  # a frame's span within ±25 % of the device's real period: consecutive frames
PERIOD_HISTORY = 9  # recent per-frame periods; their median is the device's real period
RATE_MISMATCH = 0.10  # a real rate this far from the advertised one is worth telling the user


def sdk_sample_times(previous_ns: int, timestamp_ns: int, n: int, sample_rate_hz: float) -> np.ndarray:
    """(n,) float64 sensor times in ns, the last equal to `timestamp_ns`; `previous_ns` 0 = no previous
    frame. Rounded to whole ns half-to-even, as Kotlin's `round` does."""
    if n <= 0:
        raise BleParseError("PMD frame: no samples to place in time")
    if previous_ns == 0:
        if not sample_rate_hz > 0:
            raise BleParseError(f"PMD frame: no previous frame and sample rate {sample_rate_hz:g} Hz: its samples cannot be placed in time")
        delta = (1.0 / sample_rate_hz) * 1000 * 1000 * 1000
    else:
        if timestamp_ns <= previous_ns:
            raise BleParseError(f"PMD frame: timestamp {timestamp_ns} ns is not after the previous frame's ({previous_ns} ns)")
        delta = float(timestamp_ns - previous_ns) / n
    return _place(previous_ns, timestamp_ns, n, delta)


def back_from_last(timestamp_ns: int, n: int, period_ns: float) -> np.ndarray:
    """The SDK's first-frame rule with a given period: `n` samples ending at `timestamp_ns`."""
    if n <= 0:
        raise BleParseError("PMD frame: no samples to place in time")
    if not period_ns > 0:
        raise BleParseError("PMD frame: no sample period to place its samples with")
    return _place(0, timestamp_ns, n, period_ns)


def _place(previous_ns: int, timestamp_ns: int, n: int, delta: float) -> np.ndarray:
    if float(timestamp_ns) < delta * n:
        raise BleParseError(f"PMD frame: its first sample would be at or before 2000-01-01 (timestamp {timestamp_ns} ns, {n} samples {delta:.0f} ns apart)")
    if previous_ns == 0:
        start = float(timestamp_ns) - delta * (n - 1)
        if not start > 0:
            raise BleParseError(f"PMD frame: its first sample would be at or before 2000-01-01 (timestamp {timestamp_ns} ns)")
    else:
        start = float(previous_ns) + delta
    times = np.rint(start + delta * np.arange(n, dtype=np.float64))
    times[-1] = float(timestamp_ns)
    return times


class FrameTiming:
    """Sample times for one measurement's frames: the previous timestamp per frame type, and the
    device's real sample period (median of recent frame spans; bounded memory)."""

    def __init__(self, nominal_hz: float) -> None:
        if not nominal_hz > 0:
            raise BleParseError(f"sample rate {nominal_hz:g} Hz: PMD samples cannot be placed in time")
        self.nominal_hz = float(nominal_hz)
        self._previous: dict[int, int] = {}
        self._periods: deque[float] = deque(maxlen=PERIOD_HISTORY)
        self._median: float | None = None

    def reset(self) -> None:
        """The stream stopped (or the link dropped): the next frame is a first frame again. The
        learnt period is kept: it is the same device."""
        self._previous.clear()

    @property
    def period_ns(self) -> float:
        """The device's real sample period if seen, else the advertised one."""
        return self._median if self._median is not None else NS_PER_S / self.nominal_hz

    @property
    def real_hz(self) -> float | None:
        return NS_PER_S / self._median if self._median is not None else None

    def rate_differs(self) -> bool:
        real = self.real_hz
        return real is not None and abs(real / self.nominal_hz - 1.0) > RATE_MISMATCH

    def previous(self, frame_type: int) -> int:
        """The previous frame's timestamp of this frame type; 0 if none (the SDK's convention)."""
        return self._previous.get(frame_type, 0)

    def remember(self, frame_type: int, timestamp_ns: int) -> None:
        self._previous[frame_type] = timestamp_ns

    def times(self, frame_type: int, timestamp_ns: int, n: int) -> np.ndarray:
        """(n,) float64 sensor ns of a frame's samples; remembers the frame as the previous one."""
        previous = self.previous(frame_type)
        if previous and timestamp_ns > previous:
            self._periods.append((timestamp_ns - previous) / n)
            self._median = median(self._periods)
        expected = self.period_ns
        if previous and timestamp_ns > previous and expected / SPAN_TOLERANCE <= (timestamp_ns - previous) / n <= expected * SPAN_TOLERANCE:
            times = sdk_sample_times(previous, timestamp_ns, n, self.nominal_hz)
        else:
            times = back_from_last(timestamp_ns, n, expected)  # first frame, lost frames or a clock jump
        self.remember(frame_type, timestamp_ns)
        return times

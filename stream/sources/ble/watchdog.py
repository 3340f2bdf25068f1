"""A data watchdog for streams that go silent without a word (firmware hangs, a stop that got lost).

Per measurement it remembers when data last came and how long silence may last: a few frame periods
once frames flow (at least `min_silence_s`), `first_data_s` after a (re)start. Overdue once → restart
the measurement; overdue again without data in between → reconnect. Pure bookkeeping on a clock the
caller passes in (the connection's device-time clock), so it is tested without waiting.
"""

from __future__ import annotations

from enum import Enum

FIRST_DATA_S = 5.0  # a started stream sends its first frame within about a second
MIN_SILENCE_S = 2.0
FRAME_PERIODS = 4.0


class Action(Enum):
    RESTART = "restart the measurement"
    RECONNECT = "reconnect"


class DataWatchdog:
    def __init__(self, first_data_s: float = FIRST_DATA_S, min_silence_s: float = MIN_SILENCE_S, frame_periods: float = FRAME_PERIODS) -> None:
        self.first_data_s = first_data_s
        self.min_silence_s = min_silence_s
        self.frame_periods = frame_periods
        self._last: dict[int, float] = {}
        self._allowed: dict[int, float] = {}
        self._restarted: set[int] = set()  # restarted for silence and no data since

    def expect(self, measurement: int, now: float) -> None:
        """A stream was (re)started: its first frame is due within `first_data_s`."""
        self._last[measurement] = now
        self._allowed[measurement] = self.first_data_s

    def fed(self, measurement: int, now: float, frame_span_s: float) -> None:
        self._last[measurement] = now
        self._allowed[measurement] = max(self.min_silence_s, self.frame_periods * frame_span_s)
        self._restarted.discard(measurement)

    def forget(self) -> None:
        """After a reconnect everything starts afresh."""
        self._last.clear()
        self._allowed.clear()
        self._restarted.clear()

    def deadline(self) -> float | None:
        """The earliest moment a stream becomes overdue (None: nothing is watched)."""
        return min((self._last[m] + self._allowed[m] for m in self._last), default=None)

    def overdue(self, now: float) -> dict[int, Action]:
        """Silent streams and what to do about each. Once one is overdue, the others silent for at least
        `min_silence_s` go with it: a device that hangs hangs all its streams, and one restart for all
        leaves one hole in the stream instead of several."""
        due = {}
        for m in self._last:
            if now >= self._last[m] + self._allowed[m]:
                due[m] = Action.RECONNECT if m in self._restarted else Action.RESTART
        if due:
            for m in self._last:
                if m not in due and now - self._last[m] >= self.min_silence_s:
                    due[m] = Action.RESTART
        return due

    def restarted_for_silence(self, measurement: int, now: float) -> None:
        self.expect(measurement, now)
        self._restarted.add(measurement)

    def silence_s(self, measurement: int, now: float) -> float:
        return now - self._last.get(measurement, now)

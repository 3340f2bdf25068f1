"""The run's account, kept in constant memory: counts, a latency histogram, and running error sums.

A service runs for months, so nothing here grows with the number of windows: latency percentiles
come from a fixed log-spaced histogram (bins 2 % wide, so p50/p99 are within 1 % of the exact
value), and accuracy against labels is a running sum. Devices that leave fold their counts into the
totals, so the totals are bounded by the number of counters, not of devices ever seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
from numba import njit

_LAT_MIN_MS = 1e-3
_LAT_RATIO = 1.02
_LAT_BINS = int(np.ceil(np.log(1e7 / _LAT_MIN_MS) / np.log(_LAT_RATIO))) + 2  # 1 µs .. ~3 h


@njit(cache=True)
def _histogram_add(counts: np.ndarray, values: np.ndarray, lowest: float, log_ratio: float) -> tuple[float, float]:
    """Count values into log-spaced bins (bin b ≥ 1 holds [lowest·r^(b-1), lowest·r^b)); returns (max, sum)."""
    top, total = 0.0, 0.0
    last = counts.shape[0] - 1
    for v in values:
        b = int(math.log(max(v, lowest) / lowest) / log_ratio) + 1
        counts[min(b, last)] += 1
        top = max(top, v)
        total += v
    return top, total


class LatencyHistogram:
    """Log-spaced latency histogram: add batches, read percentiles; fixed size."""

    def __init__(self) -> None:
        self.counts = np.zeros(_LAT_BINS, dtype=np.int64)
        self.max_ms = 0.0
        self.sum_ms = 0.0

    def add(self, latency_ms: np.ndarray) -> None:
        if not len(latency_ms):
            return
        top, total = _histogram_add(self.counts, np.ascontiguousarray(latency_ms, dtype=np.float64), _LAT_MIN_MS, math.log(_LAT_RATIO))
        self.max_ms = max(self.max_ms, top)
        self.sum_ms += total

    def merge(self, other: "LatencyHistogram") -> None:
        self.counts += other.counts
        self.max_ms = max(self.max_ms, other.max_ms)
        self.sum_ms += other.sum_ms

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def count_below(self, limits_ms: list[float]) -> list[int]:
        """How many latencies lie below each limit (to bin precision): the cumulative buckets a
        Prometheus histogram reports."""
        upper_ms = _LAT_MIN_MS * _LAT_RATIO ** np.arange(len(self.counts))  # bin b holds latencies below this
        cumulative = np.cumsum(self.counts)
        return [int(cumulative[np.searchsorted(upper_ms, limit, side="right") - 1]) for limit in limits_ms]

    def percentile(self, q: float) -> float:
        """The q-th percentile (bin centre, geometric), 0 when empty."""
        total = self.count
        if not total:
            return 0.0
        b = int(np.searchsorted(np.cumsum(self.counts), q / 100.0 * total, side="left"))
        if b == 0:
            return _LAT_MIN_MS
        centre = _LAT_MIN_MS * _LAT_RATIO ** (b - 0.5)
        return min(centre, self.max_ms)


@dataclass
class Tally:
    """Counters of one device (or of the whole run: tallies add up)."""

    windows: int = 0  # messages handed to publishers
    late: int = 0
    dropped_stale: int = 0  # windows dropped because the runtime fell behind (real time only)
    received_chunks: int = 0  # raw chunks that arrived for the device (valid payloads, duplicates included)
    dropped_chunks: int = 0  # chunks dropped because a device sent faster than it was served (overload)
    duplicate_chunks: int = 0  # raw chunks seen twice (same stream, sequence not advancing)
    missing_chunks: int = 0  # raw chunks never received: sequence numbers skipped within a stream (bridged or not)
    skipped_gap: int = 0  # windows that touched a gap or an overrun, never estimated
    invalid_windows: int = 0  # windows without a usable estimate: non-finite or flat input, non-finite model output
    nan_samples: int = 0
    backward_samples: int = 0
    gaps: int = 0
    epochs: int = 0  # restarts of a device's stream (new stream id, sequence or time going back)
    incomplete_windows: int = 0  # windows one channel group covered but another never reached (never estimated)
    refused_restarts: int = 0  # chunks of yet another new stream of a device restarting too often (dropped)
    contested_chunks: int = 0  # chunks of a second stream id while the device's own stream is live (dropped)
    abs_error: float = 0.0  # sum |published bpm - label| over labelled windows
    abs_error_untracked: float = 0.0
    labelled_windows: int = 0

    def add(self, other: "Tally") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def add_errors(self, k: np.ndarray, bpm: np.ndarray, untracked: np.ndarray, labels: np.ndarray | None) -> None:
        """Accumulate the error of window estimates against labels[k] (windows beyond the labels ignored)."""
        if labels is None or not len(k):
            return
        inside = k < len(labels)
        if not inside.any():
            return
        ref = labels[k[inside]]
        ok = np.isfinite(ref)
        self.abs_error += float(np.abs(bpm[inside][ok] - ref[ok]).sum())
        self.abs_error_untracked += float(np.abs(untracked[inside][ok] - ref[ok]).sum())
        self.labelled_windows += int(ok.sum())


@dataclass(frozen=True)
class RunSummary:
    windows: int
    late: int
    dropped_stale: int
    skipped_gap: int
    invalid_windows: int
    nan_samples: int
    backward_samples: int
    gaps: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    mae_bpm: float | None  # of what was published (tracked unless --no-tracking)
    mae_untracked_bpm: float | None  # the same windows decoded one by one: what tracking adds
    labelled_windows: int
    wall_s: float
    devices: int = 1
    extra: dict = field(default_factory=dict)  # service counters (dropped chunks, epochs, refused devices...)

    @staticmethod
    def of(tally: Tally, latency: LatencyHistogram, wall_s: float, devices: int, **extra: int) -> "RunSummary":
        n = tally.labelled_windows
        return RunSummary(
            windows=tally.windows, late=tally.late, dropped_stale=tally.dropped_stale, skipped_gap=tally.skipped_gap,
            invalid_windows=tally.invalid_windows, nan_samples=tally.nan_samples, backward_samples=tally.backward_samples,
            gaps=tally.gaps, latency_p50_ms=latency.percentile(50), latency_p99_ms=latency.percentile(99),
            latency_max_ms=latency.max_ms, mae_bpm=tally.abs_error / n if n else None,
            mae_untracked_bpm=tally.abs_error_untracked / n if n else None, labelled_windows=n, wall_s=wall_s,
            devices=devices, extra={"received_chunks": tally.received_chunks, "missing_chunks": tally.missing_chunks,
                                    "dropped_chunks": tally.dropped_chunks, "duplicate_chunks": tally.duplicate_chunks,
                                    "epochs": tally.epochs, "incomplete_windows": tally.incomplete_windows,
                                    "refused_restarts": tally.refused_restarts,
                                    "contested_chunks": tally.contested_chunks, **extra},
        )

    def as_log_fields(self) -> dict:
        fields_ = {k: v for k, v in self.__dict__.items() if k != "extra"}
        fields_.update({k: v for k, v in self.extra.items() if v})  # service counters only when they happened
        fields_ = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in fields_.items()}
        for key in ("mae_bpm", "mae_untracked_bpm"):
            if fields_[key] is None:
                fields_.pop(key)
        return fields_

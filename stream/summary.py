"""The end-of-run account: counts, latency percentiles, and accuracy when the source has labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RunSummary:
    windows: int  # messages handed to publishers
    late: int
    dropped_stale: int  # real-time mode: windows dropped because the pipeline fell behind
    skipped_gap: int  # windows that touched a gap or bad samples, never estimated
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
    undelivered: int = 0

    def as_log_fields(self) -> dict:
        fields = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}
        for key in ("mae_bpm", "mae_untracked_bpm"):
            if fields[key] is None:
                fields.pop(key)
        return fields


def mae_against_labels(k: np.ndarray, bpm: np.ndarray, labels: np.ndarray | None) -> tuple[float | None, int]:
    """Mean absolute error of window estimates against labels[k] (windows beyond the labels ignored)."""
    if labels is None or len(k) == 0:
        return None, 0
    ok = (k < len(labels)) & np.isfinite(labels[np.minimum(k, len(labels) - 1)])
    if not ok.any():
        return None, 0
    return float(np.mean(np.abs(bpm[ok] - labels[k[ok]]))), int(ok.sum())


def percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else 0.0

"""Tracker cost per window, its variants side by side in one run (ratios, since the machine is shared).

    python benchmarks/bench_tracker.py [--windows 20000] [--devices 1]

One batch call of `TrackerTable.update` per repeat (best of 7), windows spread over `--devices` rows as
the runtime batches them; the probabilities are sharp peaks wandering over the bins with noise, like a
student's. Variants: the tracker before issue 12, bounded evidence + harmonic refusal, and the default
(which adds the window's own peak nearest the track).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from tables import table  # noqa: E402

from ppg_stream.stream.core.decode import softmax  # noqa: E402
from ppg_stream.stream.core.tracker import TrackerParams, TrackerTable  # noqa: E402

BINS = np.arange(30.0, 211.0)
VARIANTS = {
    "previous (posterior peak, no bound, no refusal)": TrackerParams(outlier_share=0.0, harmonic_tolerance=0.0, peak_radius_bpm=0.0),
    "bounded evidence + harmonic refusal": TrackerParams(peak_radius_bpm=0.0),
    "default (+ window's own peak)": TrackerParams(),
}


def windows(n: int, devices: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    per = n // devices
    logits = rng.normal(size=(per * devices, len(BINS)))
    peaks = (60 + 40 * np.sin(np.arange(per) / 60.0)).astype(int)
    logits[np.arange(per * devices), np.tile(peaks, devices)] += 8.0
    rows = np.repeat(np.arange(devices), per)
    k = np.tile(np.arange(per), devices)
    order = np.argsort(k, kind="stable")  # interleaved, each device's windows in order (a runtime batch)
    return rows[order], k[order], softmax(logits[order])


def best_seconds(params: TrackerParams, rows, k, probs, devices: int, repeats: int = 7) -> float:
    best = float("inf")
    for _ in range(repeats):
        table_ = TrackerTable(BINS, params, capacity=devices)
        for _ in range(devices):
            table_.add()
        started = time.perf_counter()
        table_.update(rows, k, probs)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=1)
    args = parser.parse_args()
    rows, k, probs = windows(args.windows, args.devices, np.random.default_rng(0))
    for params in VARIANTS.values():  # compile every kernel before timing
        best_seconds(params, rows[:20], k[:20], probs[:20], args.devices, repeats=1)
    times = {name: best_seconds(params, rows, k, probs, args.devices) for name, params in VARIANTS.items()}
    base = times[next(iter(VARIANTS))]
    table(f"Tracker update, {len(k):,} windows over {args.devices} device(s), best of 7",
          ["variant", "µs per window", "vs previous"],
          [[name, t / len(k) * 1e6, t / base] for name, t in times.items()])


if __name__ == "__main__":
    main()

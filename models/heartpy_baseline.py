"""HeartPy on the same windows, the comparison issue 22 states its goals against ("ahead of HeartPy on every activity").

HeartPy is a time-domain beat detector users know; it is an optional dependency (the `[bench]` extra), so
this column exists only where it imports. The recipe is the issue's: each 8 s window of the recording at
its own sampling rate ([2k, 2k + 8) s, the window protocol), band-passed 0.7-3.5 Hz (HeartPy's own
Butterworth filter), `heartpy.process`, and the last good rate carried over windows where HeartPy fails
(raises, or gives no rate within the model's 30-210 bpm). The raw rate, not the stream's 25 Hz windows:
HeartPy is judged at its best, on the signal the device delivered.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..replay.recording import HOP_S, WINDOW_S, Recording

BAND_HZ = (0.7, 3.5)
MIN_BPM, MAX_BPM = 30.0, 210.0
INSTALL_HINT = "pip install -e '.[bench]'"


def heartpy_problem() -> str | None:
    """Why HeartPy cannot be used here (one line), or None when it imports."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import heartpy  # noqa: F401
    except Exception as e:  # ImportError, or HeartPy's own import of pkg_resources failing
        return f"HeartPy not available ({type(e).__name__}: {e}); {INSTALL_HINT}"
    return None


def window_bpm(segment: np.ndarray, fs: float) -> float:
    """HeartPy's rate for one window, NaN where it finds none."""
    import heartpy as hp

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            filtered = hp.filter_signal(segment, cutoff=list(BAND_HZ), sample_rate=fs, order=3, filtertype="bandpass")
            _, measures = hp.process(filtered, sample_rate=fs)
        bpm = float(measures["bpm"])
    except Exception:  # HeartPy raises on windows it cannot analyse (too few peaks, a flat signal)
        return float("nan")
    return bpm if MIN_BPM <= bpm <= MAX_BPM else float("nan")


def heartpy_rates(recording: Recording, k: np.ndarray) -> np.ndarray:
    """HeartPy's rate for windows `k` of `recording` (NaN where it finds none; the caller carries the last)."""
    ppg = np.asarray(recording.ppg, dtype=np.float64).mean(axis=1)
    t = np.asarray(recording.t_ppg, dtype=np.float64)
    out = np.full(len(k), np.nan)
    for i, kk in enumerate(k):
        lo, hi = np.searchsorted(t, [HOP_S * kk, HOP_S * kk + WINDOW_S])
        segment = ppg[lo:hi]
        if len(segment) >= recording.fs_ppg * WINDOW_S * 0.9 and np.all(np.isfinite(segment)):
            out[i] = window_bpm(segment, recording.fs_ppg)
    return out

"""Causal band-pass as second-order sections whose state carries across chunks (no look-ahead).

Chunk after chunk, the output equals `scipy.signal.sosfilt` over the whole signal started from the
steady state of the first sample (`zi = sosfilt_zi(sos) * x[0]`), which avoids the start-up step.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit


def design_bandpass(lo_hz: float, hi_hz: float, order: int, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Butterworth band-pass SOS for a source rate, and its unit-step steady state (sections, 2).

    Designs are cached by rate (to 0.01 Hz): a fleet of devices at the same few rates shares a handful
    of coefficient arrays (shared: never modified) instead of designing and holding one per device."""
    return _design(float(lo_hz), float(hi_hz), int(order), round(float(fs), 2))


@functools.lru_cache(maxsize=256)
def _design(lo_hz: float, hi_hz: float, order: int, fs: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy.signal import butter, sosfilt_zi

    hi_hz = min(hi_hz, 0.45 * fs)  # a slow source (e.g. 8 Hz) still gets a valid design
    sos = np.ascontiguousarray(butter(order, [lo_hz, hi_hz], btype="bandpass", fs=fs, output="sos"), dtype=np.float64)
    zi_unit = np.ascontiguousarray(sosfilt_zi(sos), dtype=np.float64)
    return sos, zi_unit


@njit(cache=True, inline="always")
def sos_step(sos: np.ndarray, zi: np.ndarray, ch: int, value: float) -> float:
    """One sample through every section (transposed direct form II); `zi` is (sections, channels, 2)."""
    y = value
    for s in range(sos.shape[0]):
        x = y
        y = sos[s, 0] * x + zi[s, ch, 0]
        zi[s, ch, 0] = sos[s, 1] * x - sos[s, 4] * y + zi[s, ch, 1]
        zi[s, ch, 1] = sos[s, 2] * x - sos[s, 5] * y
    return y


@njit(cache=True)
def sos_reset(zi: np.ndarray, zi_unit: np.ndarray, ch: int, value: float) -> None:
    """Put one channel's state at the steady state of a constant input `value`."""
    for s in range(zi.shape[0]):
        zi[s, ch, 0] = zi_unit[s, 0] * value
        zi[s, ch, 1] = zi_unit[s, 1] * value


@njit(cache=True)
def sosfilt_chunk(sos: np.ndarray, zi: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Filter a (n, channels) chunk, updating `zi` in place so the next chunk continues seamlessly."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[i, c] = sos_step(sos, zi, c, x[i, c])
    return out

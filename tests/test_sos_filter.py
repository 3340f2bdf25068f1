"""The causal band-pass carries its state across chunks: chunked output == whole-signal sosfilt."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import sosfilt

from ppg_stream.stream.core.sos_filter import design_bandpass, sosfilt_chunk


def _chunked(sos, zi_unit, x, cuts):
    zi = np.zeros((sos.shape[0], x.shape[1], 2))
    for c in range(x.shape[1]):
        zi[:, c, :] = zi_unit * x[0, c]
    edges = [0, *sorted(cuts), len(x)]
    return np.concatenate([sosfilt_chunk(sos, zi, x[a:b]) for a, b in zip(edges[:-1], edges[1:])])


def _whole(sos, zi_unit, x):
    return np.stack([sosfilt(sos, x[:, c], zi=zi_unit * x[0, c])[0] for c in range(x.shape[1])], axis=1)


@settings(max_examples=30, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=1999), max_size=12, unique=True),
    fs=st.sampled_from([25.0, 32.0, 64.0, 125.0]),
    seed=st.integers(0, 1000),
)
def test_chunked_filtering_equals_whole_signal_sosfilt(cuts, fs, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 3)) + 5.0  # an offset: the steady-state start must absorb it
    sos, zi_unit = design_bandpass(0.4, 4.0, 4, fs)
    np.testing.assert_allclose(_chunked(sos, zi_unit, x, cuts), _whole(sos, zi_unit, x), rtol=1e-10, atol=1e-10)


def test_bandpass_keeps_heart_band_and_rejects_drift_and_high_frequencies():
    fs = 64.0
    t = np.arange(int(60 * fs)) / fs
    sos, zi_unit = design_bandpass(0.4, 4.0, 4, fs)

    def gain(freq):
        x = np.sin(2 * np.pi * freq * t)[:, None]
        y = _chunked(sos, zi_unit, x, [])
        return np.std(y[len(y) // 2 :]) / np.std(x[len(x) // 2 :])

    assert gain(1.5) > 0.9  # 90 bpm passes
    assert gain(0.05) < 0.05  # baseline drift removed
    assert gain(12.0) < 0.05  # above the model's Nyquist: no aliasing into the HR band

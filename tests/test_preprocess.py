"""The Numba preprocessor: windows equal an offline computation, the ring wraps, bad input is handled."""

import numpy as np
import pytest
from scipy.signal import sosfilt

from ppg_stream.stream.core.spectral_model import spectral_spec
from ppg_stream.stream.core.chunk import ACC, PPG, Chunk
from ppg_stream.stream.core.preprocess import StreamPreprocessor
from ppg_stream.stream.core.sos_filter import design_bandpass

SPEC = spectral_spec()


def _signal(duration_s, fs, seed=0, channels=1):
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * fs)) / fs
    x = np.sin(2 * np.pi * 1.3 * t)[:, None] * (1 + np.arange(channels)) + 0.3 * rng.normal(size=(len(t), channels)) + 2.0
    return t, x


def _offline_windows(t, x, fs_in, spec, zscore):
    """What the stream must produce, computed the slow, obvious way over the whole signal."""
    sos, zi_unit = design_bandpass(*spec.bandpass_hz, spec.bandpass_order, fs_in)
    y = np.stack([sosfilt(sos, x[:, c], zi=zi_unit * x[0, c])[0] for c in range(x.shape[1])], axis=1)
    grid = np.arange(int(np.floor(t[-1] * spec.fs)) + 1) / spec.fs
    g = np.stack([np.interp(grid, t, y[:, c]) for c in range(y.shape[1])], axis=1)
    n_win = (len(grid) - spec.window_samples) // spec.hop_samples + 1
    out = []
    for k in range(n_win):
        w = g[k * spec.hop_samples : k * spec.hop_samples + spec.window_samples].T.copy()
        if zscore:
            w = (w - w.mean(axis=1, keepdims=True)) / w.std(axis=1, keepdims=True)
        out.append(w)
    return np.array(out)


def _feed_all(pre, chunks):
    ks, xs = [], []
    for c in chunks:
        b = pre.feed(c)
        ks.append(b.k)
        xs.append(b.x)
    return np.concatenate(ks), np.concatenate(xs)


def _chunks(group, t, x, chunk_s):
    edges = np.searchsorted(t, np.arange(0, t[-1] + chunk_s, chunk_s))
    return [Chunk(group, t[a:b], x[a:b]) for a, b in zip(edges[:-1], edges[1:]) if b > a]


@pytest.mark.parametrize("fs_in", [64.0, 125.0, 25.0])
def test_windows_equal_offline_filter_resample_and_zscore(fs_in):
    t, x = _signal(60, fs_in)
    pre = StreamPreprocessor(SPEC, {PPG: fs_in})
    k, w = _feed_all(pre, _chunks(PPG, t, x, 0.37))
    ref = _offline_windows(t, x, fs_in, SPEC, zscore=True)
    assert list(k) == list(range(len(ref)))
    np.testing.assert_allclose(w[:, 0, :], ref[:, 0, :], atol=2e-4)
    assert np.all(w[:, 1:, :] == 0)  # the model wants ACC, the source has none: zeros


def test_acc_group_is_resampled_at_its_own_rate_and_not_zscored_for_this_model():
    t, x = _signal(40, 64.0)
    ta, xa = _signal(40, 32.0, seed=1, channels=3)
    pre = StreamPreprocessor(SPEC, {PPG: 64.0, ACC: 32.0})
    chunks = [c for pair in zip(_chunks(PPG, t, x, 1.0), _chunks(ACC, ta, xa, 1.0)) for c in pair]
    k, w = _feed_all(pre, chunks)
    ref_acc = _offline_windows(ta, xa, 32.0, SPEC, zscore=False)
    n = min(len(k), len(ref_acc))
    np.testing.assert_allclose(w[:n, 1:, :], ref_acc[:n], atol=2e-4)


def test_ring_wraps_around_many_times_without_corrupting_windows():
    t, x = _signal(300, 64.0)
    small = StreamPreprocessor(SPEC, {PPG: 64.0}, ring_s=11.0)  # 275 slots for 200-sample windows
    big = StreamPreprocessor(SPEC, {PPG: 64.0}, ring_s=400.0)
    chunks = _chunks(PPG, t, x, 0.5)
    k_small, w_small = _feed_all(small, chunks)
    k_big, w_big = _feed_all(big, chunks)
    assert len(k_small) == 147 and list(k_small) == list(k_big)
    np.testing.assert_array_equal(w_small, w_big)


def test_a_chunk_longer_than_the_ring_is_fed_in_pieces_and_loses_no_window():
    t, x = _signal(120, 64.0)
    pre = StreamPreprocessor(SPEC, {PPG: 64.0}, ring_s=20.0)
    b = pre.feed(Chunk(PPG, t, x))
    assert list(b.k) == list(range(57))
    assert pre.counters.skipped_windows == 0


def test_long_gap_resets_and_skips_only_windows_that_touch_it():
    t, x = _signal(60, 64.0)
    keep = (t < 20.0) | (t >= 23.0)  # a 3 s hole
    pre = StreamPreprocessor(SPEC, {PPG: 64.0})
    k, _ = _feed_all(pre, _chunks(PPG, t[keep], x[keep], 0.25))
    touching = {k for k in range(27) if k * 2 < 23.0 and k * 2 + 8 > 20.0}
    assert set(k) == set(range(27)) - touching  # windows beside the gap keep their protocol index
    assert pre.counters.gaps == 1
    assert pre.counters.skipped_windows == len(touching)


def test_short_gap_is_bridged():
    t, x = _signal(30, 64.0)
    keep = (t < 10.0) | (t >= 10.3)
    pre = StreamPreprocessor(SPEC, {PPG: 64.0})
    k, _ = _feed_all(pre, _chunks(PPG, t[keep], x[keep], 0.25))
    assert list(k) == list(range(12))
    assert pre.counters.gaps == 0


def test_nan_samples_are_dropped_and_counted_never_estimated():
    t, x = _signal(30, 64.0)
    x[640:650] = np.nan  # 10 samples (0.16 s): dropped, bridged
    x[1280:1280 + 64 * 2] = np.nan  # 2 s of NaN: a gap
    pre = StreamPreprocessor(SPEC, {PPG: 64.0})
    k, w = _feed_all(pre, _chunks(PPG, t, x, 0.25))
    assert np.isfinite(w).all()
    assert pre.counters.nan_samples == 10 + 128
    assert pre.counters.gaps == 1
    assert set(k) == set(range(12)) - {7, 8, 9, 10}  # windows 7-10 overlap the 20-22 s hole


def test_time_going_backwards_is_dropped_and_counted():
    t, x = _signal(30, 64.0)
    pre = StreamPreprocessor(SPEC, {PPG: 64.0})
    chunks = _chunks(PPG, t, x, 1.0)
    replayed = chunks[:10] + [chunks[5]] + chunks[10:]  # a duplicated old chunk
    k, _ = _feed_all(pre, replayed)
    assert list(k) == list(range(12))
    assert pre.counters.backward_samples == len(chunks[5].t)

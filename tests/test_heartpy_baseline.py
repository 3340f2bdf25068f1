"""HeartPy on the same windows: the comparison issue 22's goals are stated against, run where HeartPy imports."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ppg_stream.models.across import carried, windows_of
from ppg_stream.models.heartpy_baseline import heartpy_problem, heartpy_rates
from ppg_stream.replay.load import load_recording
from ppg_stream.replay.synthetic import synthesize, write_synthetic_dalia

pytestmark = pytest.mark.skipif(heartpy_problem() is not None, reason=str(heartpy_problem()))


@pytest.fixture(scope="module")
def clean_recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("hp") / "rest.pkl"
    write_synthetic_dalia(path, synthesize(60, seed=5, motion_share=0.0, noise=0.02), with_chest=False)
    return load_recording(path)


def test_heartpy_finds_the_known_rate_of_a_clean_recording(clean_recording):
    labelled = windows_of("synthetic", clean_recording, "rest", heartpy=True)
    assert labelled.heartpy is not None and len(labelled.heartpy) == len(labelled.k) > 20
    assert np.isfinite(labelled.heartpy).all()
    assert np.median(np.abs(labelled.heartpy - labelled.label)) < 3.0


def test_windows_heartpy_cannot_read_are_nan_and_the_last_rate_is_carried(clean_recording):
    ppg = clean_recording.ppg.copy()
    fs = clean_recording.fs_ppg
    ppg[int(20 * fs): int(22 * fs)] = np.nan  # a gap: the windows holding it are not analysed
    ppg[int(40 * fs):] = ppg[int(40 * fs)]  # the sensor flat-lines: no beats to find
    broken = dataclasses.replace(clean_recording, ppg=ppg)
    k = np.arange(20)
    rates = heartpy_rates(broken, k)
    gap = (2 * k < 22) & (2 * k + 8 > 20)
    assert np.isnan(rates[gap]).all() and np.isfinite(rates[(2 * k + 8) <= 20]).all()
    assert np.isnan(rates[2 * k >= 40]).all()
    filled = carried(rates)
    assert np.isfinite(filled).all() and filled[-1] == rates[np.flatnonzero(np.isfinite(rates))[-1]]

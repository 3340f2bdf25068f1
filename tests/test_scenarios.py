"""The accuracy harness's synthetic scenario sets isolate what their names say: measured on the windows the
stream's preprocessing makes (models/features.py), not on the generator's own bookkeeping."""

import numpy as np
import pytest

pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from ppg_stream.models.dataset import labelled_windows  # noqa: E402
from ppg_stream.models.features import window_features  # noqa: E402
from ppg_stream.models.scenarios import SCENARIO_SETS  # noqa: E402
from ppg_stream.models.targets import TRAINING_SPEC  # noqa: E402
from ppg_stream.stream.core.beats import BeatGate  # noqa: E402


def _windows(name: str, n: int = 2):
    parts = [labelled_windows(rec, TRAINING_SPEC) for rec in SCENARIO_SETS[name](n, 7)]
    x = np.concatenate([w.x for w in parts])
    return window_features(x), np.concatenate([w.hr_bpm for w in parts]), np.concatenate([w.k for w in parts])


def test_rest_is_still_throughout():
    f, _, _ = _windows("rest")
    assert (f["acc_rms"] <= BeatGate().acc_quiet_g).all()


@pytest.mark.parametrize("name, ratio", [("motion at HR", 1.0), ("motion at 2x HR", 2.0)])
def test_motion_follows_the_heart_rate_at_its_ratio(name, ratio):
    f, label, _ = _windows(name)
    moving = f["acc_rms"] > 0.1
    assert 0.4 < moving.mean() < 0.9  # bouts with pauses between them
    at_ratio = np.abs(f["acc_peak_bpm"][moving] - ratio * label[moving]) <= 0.05 * ratio * label[moving] + 2
    assert at_ratio.mean() > 0.8, at_ratio.mean()


def test_bursts_are_short_and_rare():
    f, _, _ = _windows("bursts")
    shaken = f["acc_rms"] > BeatGate().acc_quiet_g
    assert 0.05 < shaken.mean() < 0.5, shaken.mean()  # each 3-5 s burst touches 4-5 windows of 8 s; 20-40 s apart


def test_moving_start_moves_only_at_the_start():
    f, _, k = _windows("moving start")
    shaken = f["acc_rms"] > BeatGate().acc_quiet_g
    assert shaken[k <= 8].all()  # windows that end by 26 s lie inside the first 30 s
    assert not shaken[k >= 16].any()  # windows that start after 32 s

"""Beat-interval refinement: sharper in still, clean windows; never applied under motion, without an
accelerometer, or where the beats disagree with the estimate."""

import json

import numpy as np
import pytest

from ppg_stream.models.dataset import labelled_windows
from ppg_stream.models.targets import TRAINING_SPEC
from ppg_stream.replay.synthetic import synthesize, write_synthetic_dalia
from ppg_stream.stream.core.beats import BeatGate, BEAT_THRESHOLD_STEP, BEAT_THRESHOLDS, _runs, refine_with_beats
from tests.conftest import run_cli
from tests.serve_helpers import synthetic_recording

FS = TRAINING_SPEC.fs


@pytest.fixture(scope="module")
def still():
    return labelled_windows(synthetic_recording("still", 120.0, seed=11, motion_share=0.0, noise=0.02), TRAINING_SPEC)


def test_still_clean_windows_get_the_beat_rate(still):
    # a spectral estimate 1.5 bpm off (about the in-lock floor at rest) is pulled to the beats
    rough = still.hr_bpm + 1.5
    bpm, refined = refine_with_beats(still.x, rough, FS)
    assert refined.mean() > 0.7
    assert np.abs(bpm - still.hr_bpm)[refined].mean() < 0.4
    assert np.array_equal(bpm[~refined], rough[~refined])  # elsewhere the estimate is kept


def test_an_estimate_the_beats_disagree_with_is_kept(still):
    far = still.hr_bpm + 12.0
    bpm, refined = refine_with_beats(still.x, far, FS)
    assert not refined.any() and np.array_equal(bpm, far)


def test_without_accelerometer_the_beats_alone_decide(still):
    # a finger clip or a PPG-only recording: stillness cannot be shown, regular beats that agree still refine
    rough = still.hr_bpm + 1.5
    for x in (still.x.copy(), still.x[:, :1].copy()):
        x[:, 1:] = 0.0  # what the runtime feeds a model when the device has no accelerometer (or no such channels)
        bpm, refined = refine_with_beats(x, rough, FS)
        assert refined.mean() > 0.7 and np.abs(bpm - still.hr_bpm)[refined].mean() < 0.4
        _, refined_far = refine_with_beats(x, still.hr_bpm + 12.0, FS)
        assert not refined_far.any()  # the beats never move the estimate to another rate
        _, off = refine_with_beats(x, rough, FS, BeatGate(without_accelerometer=False))
        assert not off.any()  # the gate before issue 22's finger-PPG goal


def test_without_accelerometer_motion_fakes_no_precision():
    # the moving recording with its accelerometer zeroed, given the true rate: where the beats pass the gates
    # they land on the pulse, and no window moves by more than the tolerance
    moving = labelled_windows(synthetic_recording("moving", 120.0, seed=12, motion_share=1.0, artefact_gain=3.0), TRAINING_SPEC)
    x = moving.x.copy()
    x[:, 1:] = 0.0
    bpm, refined = refine_with_beats(x, moving.hr_bpm, FS)
    assert np.abs(bpm - moving.hr_bpm)[refined].mean() < 1.0 and np.abs(bpm - moving.hr_bpm).max() <= 5.0


def test_moving_windows_are_never_refined():
    moving = labelled_windows(synthetic_recording("moving", 120.0, seed=12, motion_share=1.0, artefact_gain=3.0), TRAINING_SPEC)
    acc_rms = np.sqrt((moving.x[:, 1:4].astype(float) ** 2).sum(axis=1).mean(axis=1))
    _, refined = refine_with_beats(moving.x, moving.hr_bpm, FS)
    assert (acc_rms > 0.1).sum() > 10  # the recording does move
    assert not refined[acc_rms > 0.1].any()


@pytest.mark.slow
def test_the_cli_refines_at_rest_unless_told_not_to(tmp_path):
    syn = synthesize(120, seed=13, motion_share=0.0, noise=0.02)
    write_synthetic_dalia(tmp_path / "rest.pkl", syn, with_chest=False)
    mae = {}
    for flag in ([], ["--no-beat-refinement"]):
        result = run_cli("--replay", str(tmp_path / "rest.pkl"), "--speed", "max", "--stdout", "--no-mqtt", "--log-json", *flag)
        assert result.returncode == 0, result.stderr
        summary = next(json.loads(line) for line in result.stderr.splitlines() if '"replay finished"' in line)
        mae[bool(flag)] = summary["mae_bpm"]
    assert mae[False] < 0.7 * mae[True]


def _plain_runs(high: np.ndarray, threshold: float) -> list[int]:
    """The tops (first maximum) of the runs above `threshold`, one scan: what `_runs` must find per threshold."""
    tops, s, t = [], 0, len(high)
    while s < t:
        if high[s] <= threshold:
            s += 1
            continue
        top = s
        while s < t and high[s] > threshold:
            top = s if high[s] > high[top] else top
            s += 1
        tops.append(top)
    return tops


def test_the_one_pass_runs_are_the_four_scans():
    # pulses, plateaus (ties), runs cut by either edge, and noisy runs that dip below a threshold and rise again
    rng = np.random.default_rng(3)
    t = np.arange(200)
    signals = [np.sin(2 * np.pi * t / 17.0), np.round(np.sin(2 * np.pi * t / 23.0) * 3) / 3, np.ones(200), -np.ones(200),
               np.r_[np.linspace(1, 0.1, 50), -np.ones(100), np.linspace(0.1, 1, 50)]]
    signals += [np.sin(2 * np.pi * t / rng.uniform(8, 40)) + rng.normal(0, s, 200) for s in (0.05, 0.3, 1.0) for _ in range(30)]
    tops, counts = np.empty((BEAT_THRESHOLDS, 200), dtype=np.int64), np.zeros(BEAT_THRESHOLDS, dtype=np.int64)
    for high in signals:
        rms = float(np.sqrt(np.mean(high**2)))
        _runs(np.ascontiguousarray(high, dtype=np.float64), rms, tops, counts)
        for k in range(BEAT_THRESHOLDS):
            assert list(tops[k, : counts[k]]) == _plain_runs(high, BEAT_THRESHOLD_STEP * k * rms)


@pytest.mark.slow
def test_a_ppg_only_recording_at_rest_is_refined_by_its_beats(tmp_path):
    # a finger clip's recording (`t,ppg`, no accelerometer) with its reference beside it, replayed as a user would
    syn = synthesize(120, seed=13, motion_share=0.0, noise=0.02)
    t = np.arange(len(syn.ppg)) / syn.fs_ppg
    csv = tmp_path / "finger.csv"
    csv.write_text("t,ppg\n" + "".join(f"{a:.5f},{b:.5f}\n" for a, b in zip(t, syn.ppg)))
    (tmp_path / "reference_bpm.json").write_text(json.dumps({"finger": [float(v) for v in syn.labels_bpm]}))
    mae = {}
    for flag in ([], ["--no-beat-refinement"]):
        result = run_cli("--replay", str(csv), "--speed", "max", "--stdout", "--no-mqtt", "--log-json", *flag)
        assert result.returncode == 0, result.stderr
        summary = next(json.loads(line) for line in result.stderr.splitlines() if '"replay finished"' in line)
        mae[bool(flag)] = summary["mae_bpm"]
    assert mae[False] < 0.8 * mae[True]

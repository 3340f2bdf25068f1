"""Device augmentation (issue 22, item 1): whole recordings as another wrist device might record them,
cut into windows by the stream's own preprocessing; and the leave-one-dataset-out training command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ppg_stream.models.augment import DEVICE_RATES_HZ, WALK_HR_BPM, WALK_STEP_PER_MIN, device_variant, grip_cadence_hz, walk_swing
from ppg_stream.models.dataset import labelled_windows
from ppg_stream.models.features import window_features
from ppg_stream.models.targets import TRAINING_SPEC
from ppg_stream.replay.data_sets import DATA_ENV, WRIST_PPG_EXERCISE, data_dir
from ppg_stream.stream.core.engine import InferenceEngine
from tests.conftest import ROOT, shipped_metadata
from tests.serve_helpers import synthetic_recording


def test_grip_cadence_is_never_a_line_of_the_heart_rate():
    rng = np.random.default_rng(0)
    for hr in rng.uniform(45, 190, 200):
        c = grip_cadence_hz(hr, rng) * 60.0
        assert 35 <= c <= 100 and all(abs(r * c - hr) > 10.0 for r in (0.5, 1.0, 1.5, 2.0, 3.0))


def test_a_device_variant_keeps_the_labels_and_moves_the_dominant_peak_off_the_pulse():
    rec = synthetic_recording("still", 180.0, seed=3, motion_share=0.0, noise=0.02)
    original = labelled_windows(rec, TRAINING_SPEC)
    rng = np.random.default_rng(1)
    variants = [device_variant(rec, rng) for _ in range(6)]
    assert all(v.fs_ppg in DEVICE_RATES_HZ and np.array_equal(v.labels_bpm, rec.labels_bpm) for v in variants)
    gripped = 0
    for v in variants:
        w = labelled_windows(v, TRAINING_SPEC)
        assert abs(len(w) - len(original)) <= 1 and np.isfinite(w.x).all()
        peak_error = np.abs(window_features(w.x)["ppg_peak_bpm"] - w.hr_bpm)
        gripped += np.median(peak_error) > 10  # the PPG's own peak is the grip's cadence, not the pulse
    assert gripped >= 1  # a clean still recording: only a grip moves its peak
    assert np.median(np.abs(window_features(original.x)["ppg_peak_bpm"] - original.hr_bpm)) < 3


@pytest.mark.slow
def test_devices_train_cross_validates_and_its_student_carries_what_a_shipped_one_must(tmp_path):
    folder = data_dir(WRIST_PPG_EXERCISE)
    if not (folder / "reference_bpm.json").exists():
        pytest.skip(f"Wrist PPG During Exercise not found at {folder} (set {DATA_ENV}; see docs/data.md)")
    out = tmp_path / "tiny.onnx"
    result = subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", "devices-train", "--train", "wrist", "--cv", "3", "--copies", "1",
                             "--epochs", "1", "--mix-synthetic", "0", "--activities", "0", "--cache", str(tmp_path / "cache"),
                             "--cv-probs", str(tmp_path / "held"), "--walk-share", "0.5", "--calibrate", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3-fold CV over s2, s3, s4 (1283 windows)" in result.stdout
    held = sorted(p.stem for p in (tmp_path / "held").glob("*.npy"))
    assert len(held) == 8 and all(np.load(tmp_path / "held" / f"{name}.npy").shape[1] == 181 for name in held)
    # the exported student carries its CV and its data's licence as the shipped one does (tests/test_shipped_student.py)
    engine = InferenceEngine(str(out))
    spec = engine.spec
    assert "Wrist PPG During Exercise" in spec.training_data and "device variants" in spec.training_data
    assert "walking arm swing" in spec.training_data and spec.extra["walk_share"] == "0.5"
    t = float(spec.extra["temperature"])  # the CV's cross-fitted temperature, baked into the head
    assert t != 1.0 and f"T = {t:.3g} baked into its last layer" in out.with_suffix(".md").read_text()
    assert engine.run(np.zeros((2, 4, 200), dtype=np.float32)).shape == (2, 181)  # a model under the contract
    cv = shipped_metadata(spec)
    assert cv["folds"] == 3 and f"MAE {cv['mae']:.2f} bpm tracked" in result.stdout
    assert "Jarchi" in spec.extra["licence_training_data"] and "IEEE" not in spec.extra["licence_training_data"]
    card = out.with_suffix(".md").read_text()
    assert spec.name in card and "3-fold subject-wise CV" in card and "Jarchi" in card and "ppg-distill devices-train --train wrist" in card and "--walk-share 0.5" in card and "--calibrate" in card
    bad = subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", "devices-train", "--cv", "1"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--cv" in bad.stderr


def test_a_variant_share_keeps_every_original_window_and_about_that_share_of_each_variants():
    from ppg_stream.models.across import device_training_windows

    rec = synthetic_recording("still", 120.0, seed=4, motion_share=0.0, noise=0.02)
    original = len(labelled_windows(rec, TRAINING_SPEC))
    full = device_training_windows([rec], copies=2, seed=0)
    half = device_training_windows([rec], copies=2, seed=0, share=0.5)
    assert abs(len(full) - 3 * original) <= 2
    assert original + 0.2 * original <= len(half) <= original + 1.8 * original  # 2 variants × ~½ of their windows
    assert np.array_equal(half.x[:original], full.x[:original])  # the recording's own windows all kept, first


@pytest.mark.parametrize("share", ["0", "-0.5", "1.5", "nan"])
def test_devices_train_rejects_a_variant_share_outside_0_to_1_in_one_line(share):
    bad = subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", "devices-train", "--cv", "4", "--variant-share", share],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--variant-share" in bad.stderr


def test_without_grip_motion_no_variant_moves_the_peak_off_the_pulse():
    rec = synthetic_recording("still", 180.0, seed=3, motion_share=0.0, noise=0.02)
    rng = np.random.default_rng(1)
    for _ in range(6):
        w = labelled_windows(device_variant(rec, rng, grip_share=0.0), TRAINING_SPEC)
        assert np.median(np.abs(window_features(w.x)["ppg_peak_bpm"] - w.hr_bpm)) < 10


@pytest.mark.parametrize("share", ["-0.1", "1.01", "nan"])
def test_devices_train_rejects_a_grip_share_outside_0_to_1_in_one_line(share):
    bad = subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", "devices-train", "--cv", "4", "--grip-share", share],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--grip-share" in bad.stderr


# ---- walking arm swing (the wrist recordings' walks: the PPG's strongest line at the swing, the step or its octave,
# the step within a few bpm of the HR, which a student trained on runners reads as a pulse at twice the step)

def _line_share(x: np.ndarray, fs: float, lines_hz: list[float]) -> float:
    """Share of a signal's power (0.3-4 Hz) near the given lines (a cadence drifting by a few % widens them)."""
    f = np.fft.rfftfreq(len(x), 1 / fs)
    p = np.abs(np.fft.rfft(x - x.mean())) ** 2
    band = (f >= 0.3) & (f <= 4.0)
    near = band & np.any([np.abs(f - line) <= 0.05 + 0.035 * line for line in lines_hz], axis=0)
    return float(p[near].sum() / p[band].sum())


def test_a_walking_swing_carries_its_stride_and_step_lines_in_the_ppg_and_the_accelerometer():
    rng = np.random.default_rng(0)
    t = np.arange(0, 120, 1 / 64)
    for hr in (60.0, 85.0, 100.0, 160.0):
        ppg, acc, step = walk_swing(t, hr, rng)
        lo, hi = WALK_STEP_PER_MIN
        assert lo <= 60 * step <= hi and abs(60 * step - np.clip(hr, lo, hi)) <= 0.2 * hr + 1e-9  # the step near the HR
        stride = step / 2
        assert _line_share(ppg, 64, [stride * h for h in (1, 2, 3, 4)]) > 0.9  # the swing and harmonics 2-4, nothing else
        assert all(_line_share(acc[:, i], 64, [stride, step]) > 0.9 for i in range(3))  # swing and step's impact
        assert 0.05 <= acc.std(axis=0).max() <= 0.25 + 1e-9  # a walking wrist's g, not a runner's


def test_a_walking_variant_keeps_the_labels_and_puts_the_walk_in_its_windows():
    rec = synthetic_recording("still", 180.0, seed=3, motion_share=0.0, noise=0.02)
    rng = np.random.default_rng(2)
    for _ in range(4):
        v = device_variant(rec, rng, grip_share=0.0, walk_share=1.0)
        assert v.extra["motion"] == "walk" and np.array_equal(v.labels_bpm, rec.labels_bpm)
        w = labelled_windows(v, TRAINING_SPEC)
        step_bpm = 60 * v.extra["step_hz"]
        feats = window_features(w.x)
        # the accelerometer's peak at the step or the swing, the PPG's at one of the swing's lines, as the wrist walks show
        acc_on = np.min(np.abs(feats["acc_peak_bpm"][:, None] - step_bpm * np.array([0.5, 1.0])), axis=1) <= 4
        ppg_on = np.min(np.abs(feats["ppg_peak_bpm"][:, None] - step_bpm * np.array([0.5, 1.0, 1.5, 2.0])), axis=1) <= 6
        assert acc_on.mean() > 0.8 and ppg_on.mean() > 0.6


def test_the_walk_share_is_honoured_and_zero_reproduces_the_variants_before_it():
    rec = synthetic_recording("still", 60.0, seed=5, motion_share=0.0, noise=0.02)
    rng = np.random.default_rng(3)
    kinds = [device_variant(rec, rng, walk_share=0.5).extra["motion"] for _ in range(60)]
    assert 18 <= kinds.count("walk") <= 42 and "grip" in kinds  # half walk; the grip share applies to the rest
    assert "walk" not in [device_variant(rec, rng, walk_share=0.0).extra["motion"] for _ in range(20)]
    before, after = device_variant(rec, np.random.default_rng(7)), device_variant(rec, np.random.default_rng(7), walk_share=0.0)
    assert np.array_equal(before.ppg, after.ppg) and np.array_equal(before.acc, after.acc)  # ppg-student@1.4's recipe unchanged


def test_a_slowed_walking_variant_lies_in_a_walkers_heart_rates_and_keeps_its_duration():
    rec = synthetic_recording("still", 240.0, seed=6, motion_share=0.0, noise=0.02, start_bpm=155.0)
    rng = np.random.default_rng(4)
    for _ in range(3):
        v = device_variant(rec, rng, grip_share=0.0, walk_share=1.0, walk_slow=True)
        assert v.t_ppg[-1] <= rec.t_ppg[-1] and len(v.labels_bpm) == len(rec.labels_bpm) - 1  # cut back to its duration
        assert WALK_HR_BPM[0] - 20 <= np.nanmedian(v.labels_bpm) <= WALK_HR_BPM[1] + 20  # a runner's HR slowed into a walker's
        w = labelled_windows(v, TRAINING_SPEC)
        assert len(w) >= len(rec.labels_bpm) - 3 and np.isfinite(w.x).all()


def test_slowing_scales_the_pulse_and_the_labels_together():
    from ppg_stream.models.augment import slowed

    rec = synthetic_recording("still", 240.0, seed=6, motion_share=0.0, noise=0.02)
    r = 0.6
    t, ta, labels, keep, keep_a = slowed(rec.t_ppg, rec.t_acc, rec.labels_bpm, r, np.random.default_rng(0))
    slow = type(rec)(rec.subject, rec.ppg[keep], t, rec.fs_ppg * r, rec.acc[keep_a], ta, rec.fs_acc * r, labels)
    w = labelled_windows(slow, TRAINING_SPEC)
    peak = window_features(w.x)["ppg_peak_bpm"]
    assert np.median(np.abs(peak - w.hr_bpm)) < 3 and abs(np.median(w.hr_bpm) - r * np.median(rec.labels_bpm)) < 0.25 * r * np.median(rec.labels_bpm)


@pytest.mark.parametrize("args", [["--walk-share", "1.5"], ["--walk-share", "-0.1"], ["--walk-share", "nan"], ["--calibrate", "--out", "x.onnx"],
                                  ["--walk-slow", "--cv", "4"]])
def test_devices_train_rejects_a_walk_share_outside_0_to_1_or_calibrate_without_cv_in_one_line(args):
    bad = subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", "devices-train", *args],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and args[0] in bad.stderr

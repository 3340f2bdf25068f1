"""Wrist PPG During Exercise: the CSV reader attaches the ECG reference that sits beside a recording."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ppg_stream.replay.csv_file import write_csv
from ppg_stream.replay.data_sets import DATA_ENV, WRIST_PPG_EXERCISE, data_dir
from ppg_stream.replay.load import load_recording
from ppg_stream.replay.recording import RecordingError, window_count
from ppg_stream.replay.wrist_exercise import activity_of, read_wrist_exercise, wrist_exercise_paths


@pytest.fixture(scope="module")
def wrist_dir():
    folder = data_dir(WRIST_PPG_EXERCISE)
    if not (folder / "reference_bpm.json").exists():
        pytest.skip(f"Wrist PPG During Exercise not found at {folder} (set {DATA_ENV} to the folder holding {WRIST_PPG_EXERCISE.folder}/; see docs/data.md)")
    return folder


def _recording(tmp_path, name="s9_walk", seconds=20.0, fs=64.0):
    t = np.arange(int(seconds * fs)) / fs
    write_csv(tmp_path / f"{name}.csv", t, np.sin(2 * np.pi * 1.5 * t), np.zeros((len(t), 3)))
    return tmp_path / f"{name}.csv"


def test_reference_beside_a_csv_becomes_its_labels_with_null_as_nan(tmp_path):
    path = _recording(tmp_path)
    (tmp_path / "reference_bpm.json").write_text(json.dumps({"s9_walk": [90.0, None, 92.5], "other": [1.0]}))
    rec = load_recording(path)
    assert rec.labels_bpm[0] == 90.0 and np.isnan(rec.labels_bpm[1]) and rec.labels_bpm[2] == 92.5
    assert load_recording(_recording(tmp_path, "s9_run")).labels_bpm is None  # not named in the file: no labels


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON reference file"),
    ('["a list"]', "expected an object"),
    ('{"s9_walk": [90, "fast"]}', "window 1: 'fast' is not a heart rate"),
    ('{"s9_walk": 90}', "must be a list"),
])
def test_a_broken_reference_is_one_line(tmp_path, content, message):
    path = _recording(tmp_path)
    (tmp_path / "reference_bpm.json").write_text(content)
    with pytest.raises(RecordingError, match=message):
        load_recording(path)


def test_the_data_set_reader_insists_on_a_reference(tmp_path):
    with pytest.raises(RecordingError, match="no 's9_walk' in a reference_bpm.json"):
        read_wrist_exercise(_recording(tmp_path))
    with pytest.raises(FileNotFoundError, match="physionet.org"):
        wrist_exercise_paths(tmp_path)


def test_activities_from_names():
    assert [activity_of(n) for n in ("s2_high_resistance_bike", "s3_walk", "s4_run", "DATA_01_TYPE01", "cycling_2")] == ["bike", "walk", "run", "other", "bike"]


def test_every_shared_recording_has_a_reference_per_window(wrist_dir):
    paths = wrist_exercise_paths(wrist_dir)
    assert len(paths) == 8
    for path in paths:
        rec = read_wrist_exercise(path)
        assert rec.fs_ppg == pytest.approx(256.0, rel=1e-3) and rec.has_acc
        # one label per complete window (the last one or two may be missing), heart rates of exercise
        assert abs(len(rec.labels_bpm) - window_count(rec.duration_s)) <= 2
        ok = rec.labels_bpm[np.isfinite(rec.labels_bpm)]
        assert len(ok) > 0.9 * len(rec.labels_bpm) and 50 < np.median(ok) < 190

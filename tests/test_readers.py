"""Each reader on a file of its format, and a clear RecordingError for files that are not."""

import os
import pickle

import numpy as np
import pytest
from scipy.io import savemat

from replay import RecordingError, load_recording
from replay.csv_file import write_csv
from replay.dalia import write_dalia
from replay.safe_pickle import UnsafePickleError, safe_loads
from replay.synthetic import synthesize


def _dalia_file(tmp_path, duration_s=40.0, with_chest=True):
    syn = synthesize(duration_s, seed=3)
    path = tmp_path / "S1.pkl"
    write_dalia(path, "S1", syn.ppg, syn.acc_g, syn.labels_bpm, rpeaks=syn.rpeaks, with_chest=with_chest)
    return path, syn


def test_dalia_file_in_the_exact_structure_round_trips(tmp_path):
    path, syn = _dalia_file(tmp_path)
    with path.open("rb") as f:  # our own file, so a plain load is fine here: check the layout itself
        raw = pickle.load(f, encoding="latin1")
    assert set(raw) == {"signal", "label", "activity", "questionnaire", "rpeaks", "subject"}
    assert raw["signal"]["wrist"]["BVP"].shape == (40 * 64, 1)
    assert raw["signal"]["wrist"]["ACC"].shape == (40 * 32, 3)
    assert raw["signal"]["wrist"]["EDA"].shape == raw["signal"]["wrist"]["TEMP"].shape == (160, 1)
    assert set(raw["signal"]["chest"]) == {"ACC", "ECG", "EMG", "EDA", "Temp", "Resp"}
    assert raw["signal"]["chest"]["ECG"].shape == (40 * 700, 1)
    assert raw["activity"].shape == (160, 1) and raw["label"].shape == (17,)

    rec = load_recording(path)
    assert rec.subject == "S1" and rec.fs_ppg == 64.0 and rec.fs_acc == 32.0
    np.testing.assert_allclose(rec.ppg[:, 0], syn.ppg)
    np.testing.assert_allclose(rec.acc, np.round(syn.acc_g * 64) / 64)  # DaLiA stores 1/64 g units
    np.testing.assert_allclose(rec.labels_bpm, syn.labels_bpm)
    assert rec.t_ppg[64] == 1.0 and rec.t_acc[32] == 1.0


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/ppg_stream_pwned",))


def test_restricted_unpickler_refuses_a_malicious_pickle(tmp_path):
    path = tmp_path / "S2.pkl"
    path.write_bytes(pickle.dumps({"signal": _Evil(), "label": [], "subject": "S2"}, protocol=2))
    with pytest.raises(RecordingError, match="refused to load 'posix.system'"):
        load_recording(path)
    assert not os.path.exists("/tmp/ppg_stream_pwned")
    with pytest.raises(UnsafePickleError):
        safe_loads(pickle.dumps(__import__("collections").OrderedDict()))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a pickle at all", "not a"),
        (pickle.dumps([1, 2, 3], protocol=2), "top level is list"),
        (pickle.dumps({"label": [], "subject": "x"}, protocol=2), "missing key 'signal'"),
        (pickle.dumps({"signal": {"wrist": {"BVP": np.zeros((10, 2))}}, "label": np.zeros(0), "subject": "x"}, protocol=2), r"must have shape \(n, 1\)"),
    ],
)
def test_malformed_dalia_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(RecordingError, match=message):
        load_recording(path)


def test_truncated_dalia_pickle(tmp_path):
    path, _ = _dalia_file(tmp_path, with_chest=False)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(RecordingError, match="truncated|not a"):
        load_recording(path)


def test_ieee_training_recording_with_labels(ieee_dir):
    rec = load_recording(ieee_dir / "DATA_01_TYPE01.mat")
    assert rec.fs_ppg == 125.0 and rec.ppg.shape[1] == 2 and rec.acc.shape[1] == 3
    n = rec.ppg.shape[0]
    assert len(rec.labels_bpm) == (n - 1000) // 250 + 1
    assert 60 < rec.labels_bpm.mean() < 180
    assert np.abs(rec.acc).max() < 16  # rows 3-5 are in g: the ECG row was not taken for ACC


def test_ieee_test_layout_with_five_rows_and_true_labels(tmp_path):
    syn = synthesize(40, seed=5)
    t = np.arange(len(syn.ppg)) / 64
    t125 = np.arange(int(40 * 125)) / 125
    ppg = np.interp(t125, t, syn.ppg)
    acc = np.stack([np.interp(t125, np.arange(len(syn.acc_g)) / 32, syn.acc_g[:, i]) for i in range(3)])
    savemat(tmp_path / "TEST_S01_T01.mat", {"sig": np.vstack([ppg, ppg, acc])})
    savemat(tmp_path / "True_S01_T01.mat", {"BPM0": syn.labels_bpm[:, None]})
    rec = load_recording(tmp_path / "TEST_S01_T01.mat")
    assert rec.ppg.shape == (5000, 2) and rec.acc.shape == (5000, 3)
    np.testing.assert_allclose(rec.labels_bpm, syn.labels_bpm)


def test_mat_file_without_sig_or_with_wrong_rows(tmp_path):
    savemat(tmp_path / "a.mat", {"other": np.zeros(3)})
    with pytest.raises(RecordingError, match="no variable 'sig'"):
        load_recording(tmp_path / "a.mat")
    savemat(tmp_path / "b.mat", {"sig": np.zeros((3, 100))})
    with pytest.raises(RecordingError, match="5 or 6 rows"):
        load_recording(tmp_path / "b.mat")
    (tmp_path / "c.mat").write_bytes(b"garbage")
    with pytest.raises(RecordingError, match="not a MATLAB"):
        load_recording(tmp_path / "c.mat")


def test_csv_with_and_without_accelerometer(tmp_path):
    t = np.arange(0, 20, 1 / 50)
    ppg = np.sin(2 * np.pi * 1.2 * t)
    acc = np.stack([t * 0, t * 0, t * 0 + 1], axis=1)
    write_csv(tmp_path / "a.csv", t + 100.0, ppg, acc)
    rec = load_recording(tmp_path / "a.csv")
    assert rec.has_acc and abs(rec.fs_ppg - 50) < 1e-6 and rec.t_ppg[0] == 0
    write_csv(tmp_path / "b.csv", t, ppg)
    assert not load_recording(tmp_path / "b.csv").has_acc


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("time,ppg\n0,1\n", "must name columns 't' and 'ppg'"),
        ("t,ppg,acc_x\n0,1,2\n0.1,1,2\n", "needs all of acc_x"),
        ("t,ppg\n0,1\n0.1,abc\n", "line 3: expected numbers"),
        ("t,ppg\n0,1\n0.2,1\n0.1,1\n", "line 4: timestamp does not increase"),
    ],
)
def test_bad_csv_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(RecordingError, match=message):
        load_recording(path)


def test_csv_missing_cells_become_nan_for_the_stream_to_handle(tmp_path):
    (tmp_path / "n.csv").write_text("t,ppg\n0,1\n0.02,\n0.04,3\n")
    rec = load_recording(tmp_path / "n.csv")
    assert np.isnan(rec.ppg[1, 0]) and rec.ppg[2, 0] == 3


def test_unknown_suffix_directory_and_missing_file(tmp_path):
    with pytest.raises(RecordingError, match="unknown format '.txt'"):
        (tmp_path / "x.txt").write_text("hi")
        load_recording(tmp_path / "x.txt")
    with pytest.raises(RecordingError, match="is a directory"):
        load_recording(tmp_path)
    with pytest.raises(RecordingError, match="no such file"):
        load_recording(tmp_path / "missing.pkl")

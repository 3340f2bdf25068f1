"""`ppg-distill devices`: the accuracy table across data sets and activities, with its baselines."""

from __future__ import annotations

import subprocess
import sys

import pytest

import numpy as np

from ppg_stream.models.across import longest_run_s
from ppg_stream.models.heartpy_baseline import heartpy_problem
from tests.conftest import ROOT


def distill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.mark.slow
def test_the_table_has_every_column_and_the_confidence_check(tmp_path):
    out = tmp_path / "devices.md"
    result = distill("devices", "--wrist", "none", "--ieee", "none", "--scenarios", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    for column in ("published", "window by window", "before cues", "beat baseline", "spectral peak", "confidence ≥ 0.9"):
        assert column in text
    rows = [line.split("|") for line in text.splitlines() if line.startswith("| synthetic scenarios: rest ")]
    assert rows, text
    published, beat = float(rows[0][4]), float(rows[0][7])
    assert published < 1.0 and published < beat  # a clean recording at rest: the student is right
    if heartpy_problem() is None:  # HeartPy on the same windows, where the [bench] extra is installed
        header = next(line.split("|") for line in text.splitlines() if line.startswith("| data set / activity"))
        column = [c.strip() for c in header].index("HeartPy")
        assert 0.0 < float(rows[0][column]) < 30.0
    else:
        assert heartpy_problem() in text


@pytest.mark.slow
def test_heartpy_can_be_left_out_and_the_table_says_so():
    result = distill("devices", "--wrist", "none", "--ieee", "none", "--scenarios", "1", "--heartpy", "no")
    assert result.returncode == 0, result.stderr
    assert "| HeartPy |" not in result.stdout and "HeartPy column left out (--heartpy no)" in result.stdout
    result = distill("devices", "--heartpy", "maybe")
    assert result.returncode == 2 and "--heartpy" in result.stderr


@pytest.mark.slow
def test_missing_data_is_named_and_bad_options_are_one_line(tmp_path):
    result = distill("devices", "--wrist", str(tmp_path), "--ieee", "none", "--scenarios", "0")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "Wrist PPG During Exercise" in result.stderr and "physionet.org" in result.stderr
    result = distill("devices", "--model", str(tmp_path / "nope.onnx"))
    assert result.returncode == 2 and "no such file" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_device_variants_of_the_wrist_recordings_are_a_data_set_of_their_own():
    from ppg_stream.replay.data_sets import WRIST_PPG_EXERCISE, data_dir

    if not (data_dir(WRIST_PPG_EXERCISE) / "s2_walk.csv").exists():
        pytest.skip(f"Wrist PPG During Exercise not found at {data_dir(WRIST_PPG_EXERCISE)} (see docs/data.md)")
    result = distill("devices", "--variants", "1", "--ieee", "none", "--scenarios", "0", "--heartpy", "no")
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): line.split("|") for line in result.stdout.splitlines() if line.startswith("| ")}
    own, variants = rows["**Wrist PPG During Exercise: all**"], rows["**Wrist PPG During Exercise, device variants: all**"]
    assert int(variants[2]) == 8 and 0 < int(variants[3]) < 2 * int(own[3])  # one variant per recording, its own windows
    assert float(variants[4].strip(" *")) < 12  # another sampling rate, pulse shape and sensor: still followed
    assert any("variant 1 (" in name for name in rows)  # each recording named with its variant and its rate
    bad = distill("devices", "--variants", "-1")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--variants" in bad.stderr


def test_a_confident_wrong_lock_is_measured_in_stream_time_and_a_gap_ends_it():
    k = np.arange(40)
    wrong = np.zeros(40, dtype=bool)
    assert longest_run_s(wrong, k) == 0.0
    wrong[5:35] = True  # 30 windows in a row: a minute-long lock (8 s for the first window, 2 s for each next)
    assert longest_run_s(wrong, k) == 8.0 + 2.0 * 29
    gapped = np.r_[k[:20], k[20:] + 100]  # the stream paused after window 19: two runs, not one
    assert longest_run_s(wrong, gapped) == 8.0 + 2.0 * 14

"""The CLI on real files and imperfect input (no broker involved: --no-mqtt --stdout)."""

import json

import numpy as np
import pytest

from ppg_stream.replay.csv_file import write_csv
from ppg_stream.replay.synthetic import synthesize
from tests.conftest import run_cli


def _summary(stderr: str) -> dict:
    return next(json.loads(line) for line in stderr.splitlines() if '"replay finished"' in line)


@pytest.mark.slow
def test_ieee_recording_through_the_cli(ieee_dir):
    # the spectral estimator: the shipped student was trained on these recordings, so it would be in-sample
    result = run_cli("--replay", str(ieee_dir / "DATA_03_TYPE02.mat"), "--speed", "max", "--model", "spectral", "--stdout", "--no-mqtt", "--log-json")
    assert result.returncode == 0, result.stderr
    summary = _summary(result.stderr)
    assert summary["windows"] == summary["labelled_windows"] == len(result.messages) > 100
    assert summary["mae_untracked_bpm"] < 10  # per-window spectral estimate on running data (HeartPy ~12)
    assert summary["mae_bpm"] < summary["mae_untracked_bpm"]  # tracking helps


@pytest.mark.slow
def test_csv_with_a_hole_skips_only_windows_that_touch_it(tmp_path):
    syn = synthesize(60, seed=2, motion_share=0.0)
    t = np.arange(len(syn.ppg)) / 64
    ppg = syn.ppg.copy()
    ppg[(t >= 30) & (t < 33)] = np.nan  # 3 s of missing samples
    write_csv(tmp_path / "hole.csv", t, ppg)
    result = run_cli("--replay", str(tmp_path / "hole.csv"), "--speed", "max", "--stdout", "--no-mqtt", "--log-json")
    assert result.returncode == 0, result.stderr
    windows = [m["window"] for m in result.messages]
    touching = {k for k in range(27) if 2 * k < 33 and 2 * k + 8 > 30}
    assert set(windows) == set(range(27)) - touching
    summary = _summary(result.stderr)
    assert summary["gaps"] == 1 and summary["skipped_gap"] == len(touching) and summary["nan_samples"] == 3 * 64
    est = {m["window"]: m["bpm"] for m in result.messages}
    assert max(abs(est[k] - syn.labels_bpm[k]) for k in est) < 5  # no NaN turned into a heart rate


@pytest.mark.slow
def test_outbox_overflow_is_counted_and_logged(tmp_path, synthetic_60s):
    from tests.conftest import free_port

    result = run_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--broker", f"mqtt://127.0.0.1:{free_port()}",
                     "--outbox", "5", "--flush-timeout", "0.5", "--log-json")
    assert result.returncode == 1
    assert "outbox full: dropping oldest messages" in result.stderr
    n = synthetic_60s.n_windows  # 5 wait in the outbox for a broker that never comes; the rest were dropped
    assert result.stderr.strip().splitlines()[-1] == (
        f"ppg-stream: error: {n} of {n} messages were not delivered: {n - 5} dropped because the outbox was full (--outbox 5); "
        "5 not acknowledged by the MQTT broker within 0.5 s")

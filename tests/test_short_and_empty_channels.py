"""Empty and short channel arrays, in every recording format: a one-line refusal where the file cannot
be a recording, a counted and explained event where part of it can (never a traceback, never a
silent run that publishes nothing)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.io import savemat

from ppg_stream.replay.csv_file import write_csv
from ppg_stream.replay.dalia import write_dalia
from tests.conftest import run_cli

RNG = np.random.default_rng(0)
BVP = RNG.normal(size=(64 * 60, 1))  # 60 s at DaLiA's 64 Hz
ACC = RNG.normal(size=(32 * 60, 3)) * 0.01
LABELS = np.full(27, 70.0)


def _one_line(result, *fragments):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _summary(result) -> dict:
    return next(json.loads(line) for line in reversed(result.stderr.splitlines()) if '"replay finished"' in line)


@pytest.mark.parametrize("name, write, fragments", [
    ("acc0.pkl", lambda p: write_dalia(p, "acc0", BVP, ACC[:0], LABELS), ["the accelerometer holds no samples"]),
    ("bvp0.pkl", lambda p: write_dalia(p, "bvp0", BVP[:0], ACC, LABELS), ["signal['wrist']['BVP'] must have shape (n, 1)"]),
    ("DATA_97_TYPE02.mat", lambda p: savemat(p, {"sig": np.zeros((6, 0))}), ["'sig' must have 5 or 6 rows"]),
    ("DATA_96_TYPE02.mat", lambda p: savemat(p, {"sig": RNG.normal(size=(6, 5))}), ["0.04 s of PPG is shorter than one 8 s window"]),
    ("short.pkl", lambda p: write_dalia(p, "short", BVP[:64 * 5], ACC[:32 * 5], LABELS[:0]), ["5 s of PPG is shorter than one 8 s window"]),
    ("header.csv", lambda p: p.write_text("t,ppg,acc_x,acc_y,acc_z\n"), ["needs at least two samples"]),
    ("one.csv", lambda p: write_csv(p, np.zeros(1), BVP[:1]), ["needs at least two samples"]),
])
def test_empty_or_too_short_recordings_are_one_line(tmp_path, name, write, fragments):
    path = tmp_path / name
    write(path)
    _one_line(run_cli("--replay", str(path), "--speed", "max", "--no-mqtt"), str(path), *fragments)


@pytest.mark.parametrize("fmt", ["pkl", "csv"])
def test_an_accelerometer_that_stops_early_is_counted_and_said(tmp_path, fmt):
    """60 s of PPG with 1 s of accelerometer: no window can be cut without the accelerometer the model
    reads, and the run says so: every one of the 27 windows counted as never estimated, and a warning."""
    path = tmp_path / f"accshort.{fmt}"
    if fmt == "pkl":
        write_dalia(path, "accshort", BVP, ACC[:32], LABELS)
    else:
        t = np.arange(len(BVP)) / 64.0
        rows = [f"{t[i]:.6f},{BVP[i, 0]:.6f}" + (",0.01,0.02,0.98" if t[i] < 1 else ",,,") for i in range(len(t))]
        path.write_text("t,ppg,acc_x,acc_y,acc_z\n" + "\n".join(rows) + "\n")
    result = run_cli("--replay", str(path), "--speed", "max", "--no-mqtt", "--stdout", "--log-json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    summary = _summary(result)
    assert summary["windows"] + summary["incomplete_windows"] == 27 and summary["incomplete_windows"] >= 26
    assert any('"windows never estimated' in line and '"windows": ' in line for line in result.stderr.splitlines())

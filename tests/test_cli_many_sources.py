"""Several recordings in one process: one device each, every window of every device, one summary."""

import json

import pytest

from tests.conftest import make_synthetic_file, run_cli


def _summary(stderr: str) -> dict:
    return next(json.loads(line) for line in stderr.splitlines() if '"replay finished"' in line)


@pytest.mark.slow
def test_a_folder_and_a_file_replay_as_separate_devices(tmp_path):
    folder = tmp_path / "ward"
    folder.mkdir()
    files = [make_synthetic_file(folder, f"bed{i}", 40.0, seed=60 + i) for i in range(3)]
    (folder / "notes.txt").write_text("not a recording")
    extra = make_synthetic_file(tmp_path, "walker", 30.0, seed=70)
    result = run_cli("--replay", str(folder), str(extra.path), "--speed", "max", "--stdout", "--no-mqtt", "--log-json")
    assert result.returncode == 0, result.stderr
    by_device = {}
    for m in result.messages:
        by_device.setdefault(m["device"], []).append(m["window"])
    expected = {f.path.stem: f for f in files + [extra]}
    assert by_device.keys() == expected.keys()
    for device, f in expected.items():
        assert sorted(by_device[device]) == list(range(f.n_windows))
        errors = [abs(m["bpm"] - f.syn.labels_bpm[m["window"]]) for m in result.messages if m["device"] == device]
        assert sum(errors) / len(errors) < 5
    summary = _summary(result.stderr)
    assert summary["devices"] == 4 and summary["windows"] == sum(f.n_windows for f in expected.values())
    assert summary["labelled_windows"] == summary["windows"]


@pytest.mark.slow
def test_two_recordings_of_the_same_subject_get_distinct_ids(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    make_synthetic_file(a, "S1", 20.0, seed=1)
    make_synthetic_file(b, "S1", 20.0, seed=2)
    result = run_cli("--replay", str(a / "S1.pkl"), str(b / "S1.pkl"), "--speed", "max", "--stdout", "--no-mqtt")
    assert result.returncode == 0, result.stderr
    devices = {m["device"] for m in result.messages}
    assert len(devices) == 2 and "S1" in devices


def test_device_id_with_several_recordings_is_a_one_line_error(tmp_path):
    make_synthetic_file(tmp_path, "x", 20.0, seed=1)
    make_synthetic_file(tmp_path, "y", 20.0, seed=2)
    result = run_cli("--replay", str(tmp_path), "--device-id", "one", "--no-mqtt")
    assert result.returncode == 2
    assert result.stderr.strip() == "ppg-stream: error: --device-id names one device, but 2 recordings are replayed"


def test_an_empty_folder_is_a_one_line_error(tmp_path):
    result = run_cli("--replay", str(tmp_path), "--no-mqtt")
    assert result.returncode == 2 and "a folder with no recordings" in result.stderr and "Traceback" not in result.stderr

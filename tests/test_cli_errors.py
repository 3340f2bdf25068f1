"""User mistakes get one clear line on stderr and a non-zero exit, never a traceback."""

import os
import pickle

import pytest

from tests.conftest import run_cli


def _assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ppg-stream: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "setup, args, fragments",
    [
        (None, ["--replay", "missing.pkl"], ["missing.pkl: no such file"]),
        (("x.txt", b"hello"), ["--replay", "{}"], ["unknown format '.txt'"]),
        (("S9.pkl", b"garbage"), ["--replay", "{}"], ["not a"]),
        (("S9.pkl", pickle.dumps(_Evil())), ["--replay", "{}"], ["refused to load"]),
        (("d.csv", b"t,ppg\n0,1\n0,2\n"), ["--replay", "{}"], ["line 3: timestamp does not increase"]),
        (None, ["--demo", "--speed", "0"], ["invalid speed '0'"]),
        (None, ["--demo", "--speed", "fast"], ["invalid speed 'fast'"]),
        (None, ["--demo", "--budget-ms", "-1"], ["--budget-ms", "positive number"]),
        (None, ["--demo", "--broker", "http://x"], ["expected mqtt://HOST[:PORT]"]),
        (None, ["--demo", "--broker", "mqtt://host:99999"], ["port must be a number"]),
        (None, ["--demo", "--topic-prefix", "a/#"], ["wildcards"]),
        (None, ["--demo", "--model", "nope.onnx"], ["nope.onnx: no such model file"]),
        (("m.onnx", b"\x00\x01junk"), ["--demo", "--model", "{}"], ["not a loadable ONNX model"]),
        (None, ["--ble", "AA:BB:CC:DD:EE:FF", "--speed", "10"], ["--speed applies to replays only"]),
        (None, ["--ble", ""], ["expected a device address"]),
        (None, ["--demo", "--scan-timeout", "3"], ["--scan-timeout applies to --ble only"]),
        (None, [], ["one of the arguments --replay --demo --ble is required"]),
        (None, ["--demo", "--replay", "x.pkl"], ["not allowed with argument"]),
        (None, ["--demo", "--bogus"], ["unrecognized arguments: --bogus"]),
    ],
)
def test_bad_files_and_flags(tmp_path, setup, args, fragments):
    if setup:
        name, content = setup
        (tmp_path / name).write_bytes(content)
        args = [a.replace("{}", str(tmp_path / name)) for a in args]
    else:
        args = [str(tmp_path / a) if a.endswith(".pkl") and a != "x.pkl" else a for a in args]
    _assert_one_line_error(run_cli(*args, "--no-mqtt"), *fragments)


def test_help_explains_usage_to_a_newcomer():
    result = run_cli("--help")
    assert result.returncode == 0
    for text in ("--replay", "--demo", "--speed", "--broker", "--stdout", "mosquitto_sub", "ppg/<device>/hr"):
        assert text in result.stdout


def test_ble_without_a_bluetooth_stack_is_one_line():
    """The real bleak path: on a machine with no adapter/BlueZ (CI) it must say so, not crash."""
    result = run_cli("--ble", "scan", "--scan-timeout", "1")
    if result.returncode == 0:  # a machine with a working radio: the table's header
        assert result.stdout.split()[:4] == ["ADDRESS", "RSSI", "NAME", "SERVICES"]
    else:
        _assert_one_line_error(result, "Bluetooth")

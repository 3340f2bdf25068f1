"""User mistakes get one clear line on stderr and a non-zero exit, never a traceback."""

import io
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import savemat

from ppg_stream.stream.core.spectral_model import build_spectral_model
from tests.conftest import ROOT, CliResult, run_cli
from tests.fuzz_readers import CRASH_PICKLE
from tests.mat_files import FUZZ_CRASH_COMPLEX_TYPE0, sig_file
from tests.models_for_tests import batch_of_one_model, first_row_only_model, non_utf8_metadata_bytes, with_metadata, without_metadata

P = pickle


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


def _pickle_ops(*ops: bytes, protocol: int = 2) -> bytes:
    return P.PROTO + bytes([protocol]) + b"".join(ops) + P.STOP


def _global(module: str, name: str) -> bytes:
    return P.GLOBAL + f"{module}\n{name}\n".encode()


def _text(s: str) -> bytes:
    return P.SHORT_BINUNICODE + bytes([len(s.encode())]) + s.encode()


_F8 = _global("numpy", "dtype") + _text("f8") + P.TUPLE1 + P.REDUCE
_NDARRAY_SHAPE_1E12 = (
    _global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray") + P.MARK + P.BININT1 + b"\0" + P.TUPLE + _text("b")
    + P.TUPLE3 + P.REDUCE + P.MARK + P.BININT1 + b"\1" + P.MARK + P.LONG1 + b"\x06" + (10**12).to_bytes(6, "little") + P.TUPLE
    + _F8 + P.NEWFALSE + P.SHORT_BINBYTES + b"\0" + P.TUPLE + P.BUILD
)
# What each did to the previous unpickler, all now one line and exit 2:
HOSTILE_PICKLES = {
    "segfault in dtype.__setstate__": CRASH_PICKLE,
    "SystemError in dtype.__setstate__": (b"\x80\x00cnumpy\ndtype\n(\x8c\x02U2tR(J\x01\x00\x00\x00\x8c\x01|(NNNt(NNNt(NNNt"
                                          b"J\xff\xff\xff\xffJ\x00\x00\x00\x80J\x00\x00\x00\x00Ntb."),
    "MemoryError, BINBYTES8 2^62": _pickle_ops(P.BINBYTES8 + struct.pack("<Q", 2**62), protocol=4),
    "OverflowError, BINBYTES8 2^64-1": _pickle_ops(P.BINBYTES8 + struct.pack("<Q", 2**64 - 1), protocol=4),
    "FRAME 2^60": _pickle_ops(P.FRAME + struct.pack("<Q", 2**60) + P.NONE, protocol=4),
    "MemoryError, _reconstruct shape 10^12": _pickle_ops(_NDARRAY_SHAPE_1E12),
    "LookupError in _codecs.encode": _pickle_ops(_global("_codecs", "encode") + _text("x") + _text("nope") + P.TUPLE2 + P.REDUCE),
    "SyntaxError in numpy.dtype(',f')": _pickle_ops(_global("numpy", "dtype") + _text(",f") + P.TUPLE1 + P.REDUCE),
}


@pytest.mark.parametrize("what", sorted(HOSTILE_PICKLES))
def test_hostile_pickles_are_one_line(tmp_path, what):
    path = tmp_path / "S1.pkl"
    path.write_bytes(HOSTILE_PICKLES[what])
    _assert_one_line_error(run_cli("--replay", str(path), "--no-mqtt"), f"{path}: not a loadable PPG-DaLiA pickle")


def _mat(variables: dict) -> bytes:
    buffer = io.BytesIO()
    savemat(buffer, variables)
    return buffer.getvalue()


_V73 = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116) + b"\x00" * 8 + b"\x00\x02IM"
        + b"\x00" * 384 + b"\x89HDF\r\n\x1a\n")


def _model(**changes: str) -> bytes:
    return with_metadata(build_spectral_model(), **changes).SerializeToString()


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
        # issue 9: files that are not what they claim
        (("t.csv", b"t,ppg\n0,\ninf,"), ["--replay", "{}"], ["line 3: timestamp inf is not finite"]),
        (("t.csv", b"t,ppg\n" + b"".join(b"%d,1\n" % (20 * i) for i in range(99))), ["--replay", "{}"], ["is t in milliseconds?"]),
        (("t.csv", b"t,ppg\n" + b"".join(b"%de-300,1\n" % i for i in range(99))), ["--replay", "{}"], ["gives 1e+300 Hz; ppg-stream takes 8-10000 Hz"]),
        (("t.csv", b"t,ppg\n0,1\n0.02," + b"1" * 131_073 + b"\n"), ["--replay", "{}"], ["line 3 is longer than 65,536 characters"]),
        (("s.mat", _mat({"sig": "text"})), ["--replay", "{}"], ["'sig' is text, expected a matrix of numbers"]),
        (("s.mat", _mat({"sig": np.array([[np.zeros(2), "x"]], dtype=object)})), ["--replay", "{}"], ["'sig' is a cell array"]),
        (("s.mat", _mat({"sig": {"a": np.zeros((6, 9))}})), ["--replay", "{}"], ["'sig' is a struct"]),
        (("s.mat", _mat({"sig": np.ones((6, 99)) * 1j})), ["--replay", "{}"], ["'sig' is complex"]),
        (("s.mat", sig_file(real_type=45321, compress=False)), ["--replay", "{}"], ["variable 'sig' has real data of unknown type 45321"]),
        (("s.mat", FUZZ_CRASH_COMPLEX_TYPE0), ["--replay", "{}"], ["variable 'sig' has real data of unknown type 0"]),
        (("s.mat", sig_file(data_bytes=64 << 20)), ["--replay", "{}"], ["variable 'sig' inflates to more than 75,136 bytes"]),
        (("s.mat", _V73), ["--replay", "{}"], ["a MATLAB v7.3 file (HDF5 inside)", "save('s_v7.mat', 'sig', '-v7')"]),
        (("S1.pkl", pickle.dumps({"signal": {"wrist": {"BVP": np.ones((700, 1)) * 1j}}, "label": np.zeros(2), "subject": "S1"})),
         ["--replay", "{}"], ["signal['wrist']['BVP'] is complex (complex128); a recording holds real numbers"]),
        # model metadata outside the contract's ranges
        (("m.onnx", _model(bins_bpm='["a", "b"]')), ["--demo", "--model", "{}"], ["'bins_bpm' must hold finite numbers, got str"]),
        (("m.onnx", _model(channels='"ppg"')), ["--demo", "--model", "{}"], ["'channels' must be a JSON list of channel names"]),
        (("m.onnx", _model(preprocess='{"bandpass_hz": [0.4, 4.0], "bandpass_order": -4}')), ["--demo", "--model", "{}"],
         ["bandpass_order must be 1-10, got -4"]),
        (("m.onnx", _model(hop_s="1e-9")), ["--demo", "--model", "{}"], ["'hop_s' must be 0.1 s up to window_s (8 s), got 1e-09"]),
        (("m.onnx", _model(acc_normalize="robust")), ["--demo", "--model", "{}"], ["'acc_normalize' must be one of"]),
        # flags
        (None, ["--demo", "--device-id", ""], ["--device-id: a device id cannot be empty"]),
        (None, ["--demo", "--device-id", "d" * 70_000], ["--device-id: device id is 70,000 bytes as a topic level; at most 4,096"]),
        (None, ["--demo", "--topic-prefix", "p" * 70_000], ["is 70,000 bytes; at most 61,431 (an MQTT topic is at most 65,535 bytes)"]),
        (None, ["--demo", "--topic-prefix", "$SYS"], ["must not start with '$'"]),
        (None, ["--demo", "--speed", "1e-300"], ["invalid speed '1e-300': a number from 0.01 to 1,000,000"]),
        (None, ["--demo", "--chunk-s", "1e-300"], ["--chunk-s", "expected 0.1-3600 seconds"]),
        (None, ["--ble", "A" * 5000], ["expected a device address"]),  # its id would not fit a topic
        # it used to be scanned for until the scan timed out
        (None, ["--ble", "nonsense"], ["--ble 'nonsense': expected a device address such as A0:9E:1A:12:34:56"]),
        (None, ["--ble", "A0:9E:1A:12:34"], ["expected a device address"]),
        (None, ["--ble", "A0:9E:1A:12:34:5G"], ["expected a device address"]),
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


@pytest.mark.slow
def test_a_consumer_of_mqtt_is_refused_where_nothing_is_published_there():
    """A NATS gateway that runs no model, or `serve --nats` without --broker, publishes nothing over
    MQTT: a dashboard or Home Assistant beside it would show nothing, so it is a mistake, said at once."""
    gateway = run_cli("--demo", "--publish-raw", "--nats", "nats://127.0.0.1:4222", "--dashboard")
    _assert_one_line_error(gateway, "--dashboard reads the MQTT broker, but with --publish-raw only --nats nothing is published there")
    for option in ("--dashboard", "--ha-discovery"):
        serve = run_cli("serve", "--nats", "nats://127.0.0.1:4222", option)
        _assert_one_line_error(serve, f"{option} ", "MQTT, but with --nats heart rate goes to MQTT only when --broker URL names a broker")


@pytest.mark.parametrize("name, content, fragments", [
    ("no-metadata.onnx", lambda: without_metadata(build_spectral_model()).SerializeToString(), ["carries none of the contract's metadata"]),
    ("no-channels.onnx", lambda: with_metadata(build_spectral_model(), channels=None).SerializeToString(), ["model metadata lacks 'channels'"]),
    ("latin1.onnx", lambda: non_utf8_metadata_bytes(build_spectral_model()), ["metadata (metadata_props) is not valid UTF-8"]),
    ("one-row.onnx", lambda: first_row_only_model().SerializeToString(), ["a batch of 4 windows gives an output of shape [1, 181], not [4, 181]"]),
    ("fixed-batch.onnx", lambda: batch_of_one_model().SerializeToString(), ["onnxruntime cannot run it on a batch of 4 windows"]),
])
def test_models_that_break_at_load_or_on_a_batch_are_one_line(tmp_path, name, content, fragments):
    """Each is refused before the first window, naming what is wrong: no traceback, no silent run."""
    path = tmp_path / name
    path.write_bytes(content())
    _assert_one_line_error(run_cli("--demo", "--speed", "max", "--model", str(path), "--no-mqtt"), str(path), *fragments)


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


# `ppg-stream ARGS` exactly as a user runs it, which on exit writes its own peak RSS (VmHWM: this
# process's memory only; ru_maxrss would include the pytest process it was forked from)
_MEASURED_CLI = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as f:
        kib = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(os.environ["PPG_TEST_PEAK_RSS"], "w") as out:
        out.write(kib)
atexit.register(_peak)
sys.argv = ["ppg-stream", *sys.argv[1:]]
runpy.run_module("ppg_stream.stream.cli", run_name="__main__", alter_sys=True)
"""


def _run_cli_measured(tmp_path, *args: str) -> tuple[CliResult, float]:
    """The CLI's result and its peak RSS in MiB."""
    peak_file = tmp_path / "peak_rss"
    proc = subprocess.run([sys.executable, "-c", _MEASURED_CLI, *args], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PPG_TEST_PEAK_RSS": str(peak_file)})
    return CliResult(proc.returncode, proc.stdout, proc.stderr), int(peak_file.read_text()) / 1024


@pytest.mark.slow
def test_unbounded_csv_inputs_end_in_one_line_with_bounded_memory(tmp_path):
    """Issue 9: `/dev/zero` as a .csv grew to 24 GB; a 2 GB sparse .csv reached 4.2 GB then a traceback."""
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    sparse = tmp_path / "sparse.csv"
    with sparse.open("wb") as f:
        f.truncate(2 << 30)
    headed = tmp_path / "headed.csv"
    with headed.open("wb") as f:
        f.write(b"t,ppg\n0,1\n")
        f.truncate(2 << 30)
    baseline, baseline_rss = _run_cli_measured(tmp_path, "--replay", str(tmp_path / "missing.csv"), "--no-mqtt")
    _assert_one_line_error(baseline, "no such file")
    for path, fragment in ((tmp_path / "zero.csv"), "is a device, pipe or socket"), (sparse, "line 1 holds a NUL byte"), (headed, "line 3 holds a NUL byte"):
        result, rss = _run_cli_measured(tmp_path, "--replay", str(path), "--no-mqtt")
        _assert_one_line_error(result, fragment)
        assert rss < baseline_rss + 64, f"{path.name}: {rss:.0f} MiB against {baseline_rss:.0f} MiB for a missing file"


def test_ble_addresses_are_what_bluez_windows_and_macos_name_devices():
    from ppg_stream.stream.sources.ble.address import is_ble_address

    for good in ("A0:9E:1A:12:34:56", "a0:9e:1a:12:34:56", "A0-9E-1A-12-34-56", "2F6BB3C4-51A1-4E5E-9D3A-0C5C2A6E9B1D"):
        assert is_ble_address(good), good
    for bad in ("nonsense", "A0:9E:1A:12:34", "A0:9E-1A:12:34:56", "A0:9E:1A:12:34:56:78", "2F6BB3C4-51A1-4E5E-9D3A", ""):
        assert not is_ble_address(bad), bad


@pytest.mark.slow
@pytest.mark.network
def test_a_taken_port_is_said_before_the_warm_up(mosquitto_1883, synthetic_60s):
    """--dashboard and --metrics-port used to be bound after the 8-40 s warm-up."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        broker = ["--broker", "mqtt://127.0.0.1:1883"]
        replay = run_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--dashboard", port, *broker)
        serve = run_cli("serve", "--metrics-port", port, *broker)
    _assert_one_line_error(replay, f"dashboard: cannot listen on 127.0.0.1:{port}: address already in use")
    _assert_one_line_error(serve, f"--metrics-port {port}: cannot listen on 127.0.0.1:{port}: address already in use")

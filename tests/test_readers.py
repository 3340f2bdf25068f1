"""Each reader on a file of its format, and a clear RecordingError for files that are not."""

import os
import pickle
import tracemalloc

import numpy as np
import pytest
from scipy.io import savemat

from ppg_stream.replay import RecordingError, load_recording
from ppg_stream.replay.csv_file import write_csv
from ppg_stream.replay.dalia import write_dalia
from ppg_stream.replay.safe_pickle import UnsafePickleError, safe_loads
from ppg_stream.replay.synthetic import synthesize
from tests.mat_files import FUZZ_CRASH_COMPLEX_TYPE0, sig_file


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


# ---------------------------------------------------------------- imperfect and hostile files (issue 9)


@pytest.mark.parametrize(
    "text, message",
    [
        ("t,ppg\n0,\ninf,", "line 3: timestamp inf is not finite"),
        ("t,ppg\n0,1\nnan,1\n", "line 3: missing timestamp"),
        ("t,ppg\n" + "".join(f"{i * 20},1\n" for i in range(50)), "gives 0.05 Hz.*is t in milliseconds\\? it must be in seconds"),
        ("t,ppg\n" + "".join(f"{i}e-300,1\n" for i in range(50)), "gives 1e\\+300 Hz; ppg-stream takes 8-10000 Hz"),
        ("t,ppg\n0,1\n1,1\n2,1\n", "gives 1 Hz; ppg-stream takes 8-10000 Hz"),
        ("t,ppg\n0,1\n0.02," + "7" * 200_000 + "\n", "line 3 is longer than 65,536 characters"),
        ('t,ppg\n0,"' + ("x" * 1000 + "\n") * 140 + '"\n', "not valid CSV \\(field larger than field limit"),
        ("t,ppg\n0,1\n0.02,\x00\n", "line 3 holds a NUL byte"),
    ],
)
def test_csv_that_cannot_be_a_recording_is_one_line(tmp_path, text, message):
    path = tmp_path / "x.csv"
    path.write_text(text)
    with pytest.raises(RecordingError, match=message) as e:
        load_recording(path)
    assert "\n" not in str(e.value)


def test_csv_that_is_not_text_or_not_a_file(tmp_path):
    (tmp_path / "latin.csv").write_bytes(b"t,ppg\n0,\xe9\n")
    with pytest.raises(RecordingError, match="not UTF-8 text"):
        load_recording(tmp_path / "latin.csv")
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    with pytest.raises(RecordingError, match="is a device, pipe or socket, not a recording file"):
        load_recording(tmp_path / "zero.csv")


def test_csv_reader_stops_at_its_memory_budget_and_sample_bound(tmp_path, monkeypatch):
    import ppg_stream.replay.csv_file as csv_file
    import ppg_stream.replay.limits as limits

    t = np.arange(0, 100, 1 / 50)
    write_csv(tmp_path / "long.csv", t, np.sin(t))  # 5,000 rows
    monkeypatch.setattr(csv_file, "CHECK_EVERY_ROWS", 1000)
    monkeypatch.setattr(csv_file, "reader_budget_bytes", lambda: 1000 * 2 * csv_file.BYTES_PER_VALUE)  # room for 1,000 rows
    with pytest.raises(RecordingError, match="2,000 rows and counting would need 125.0 KiB of memory, more than the 62.5 KiB"):
        load_recording(tmp_path / "long.csv")
    monkeypatch.setattr(csv_file, "reader_budget_bytes", lambda: 1 << 40)
    monkeypatch.setattr(limits, "MAX_SAMPLES", 3000)
    with pytest.raises(RecordingError, match="4,000 samples is more than the 3,000"):
        load_recording(tmp_path / "long.csv")


def test_available_memory_is_measured():
    from ppg_stream.replay.limits import available_memory_bytes

    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available_memory_bytes() <= total


def _mat_bytes(variables: dict, **kwargs) -> bytes:
    import io

    buffer = io.BytesIO()
    savemat(buffer, variables, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "sig, message",
    [
        ("not numbers", "'sig' is text, expected a matrix of numbers"),
        (np.array([[np.zeros(3), "x"]], dtype=object), "'sig' is a cell array"),
        ({"a": np.zeros((6, 10))}, "'sig' is a struct"),
        (np.zeros((6, 10), dtype=bool), "'sig' is logical"),
        (np.zeros((6, 10)) * 1j, "'sig' is complex; a recording holds real numbers"),
        (np.zeros((6, 10, 2)), "'sig' must have 5 or 6 rows"),
    ],
)
def test_mat_whose_sig_is_not_a_real_matrix(tmp_path, sig, message):
    (tmp_path / "x.mat").write_bytes(_mat_bytes({"sig": sig}))
    with pytest.raises(RecordingError, match=message):
        load_recording(tmp_path / "x.mat")


def test_mat_sparse_sig_is_refused(tmp_path):
    from scipy.sparse import eye

    (tmp_path / "x.mat").write_bytes(_mat_bytes({"sig": eye(6, 10)}))
    with pytest.raises(RecordingError, match="'sig' is a sparse matrix"):
        load_recording(tmp_path / "x.mat")


def test_mat_v73_says_what_it_is_and_how_to_convert(tmp_path):
    """A v7.3 file is HDF5 behind MATLAB's 128-byte header, version 0x0200 (what matters to a reader)."""
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .".ljust(116)
    header += b"\x00" * 8 + b"\x00\x02" + b"IM"
    (tmp_path / "DATA_01.mat").write_bytes(header + b"\x00" * 384 + b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(RecordingError, match=r"a MATLAB v7\.3 file \(HDF5 inside\).*save it as v7: in MATLAB or Octave, "
                       r"load\('DATA_01\.mat'\); save\('DATA_01_v7\.mat', 'sig', '-v7'\)"):
        load_recording(tmp_path / "DATA_01.mat")


def test_mat_compressed_variable_that_inflates_beyond_its_dimensions_is_refused(tmp_path):
    small = sig_file()
    (tmp_path / "ok.mat").write_bytes(small)
    assert load_recording(tmp_path / "ok.mat").ppg.shape == (100, 2)  # the hand-made layout is what scipy reads
    bomb = sig_file(data_bytes=64 << 20)  # 64 MiB of zeros in a file of about 64 KiB
    assert len(bomb) < 100_000
    (tmp_path / "bomb.mat").write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(RecordingError, match="variable 'sig' inflates to more than 75,136 bytes, more than its dimensions \\(6, 100\\) need"):
            load_recording(tmp_path / "bomb.mat")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # inflated in bounded steps and thrown away, never held


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("real_type, imag_type, part", [(45321, None, "real data of unknown type 45321"), (9, 250, "imaginary data of unknown type 250")])
def test_mat_data_of_an_unknown_type_is_refused_before_scipy_crashes_on_it(tmp_path, compress, real_type, imag_type, part):
    """Found by fuzzing: scipy indexes its type table with the file's type code unchecked (a bus error)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    good = tmp_path / "good.mat"
    good.write_bytes(sig_file(compress=compress, imag_type=None if imag_type is None else 9))
    path = tmp_path / "bad.mat"
    path.write_bytes(sig_file(compress=compress, real_type=real_type, imag_type=imag_type))
    code = f"""
from ppg_stream.replay import RecordingError, load_recording
for path in ({str(good)!r}, {str(path)!r}):
    try:
        print(load_recording(path).ppg.shape)
    except RecordingError as e:
        print(e)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    good_says = "(100, 2)" if imag_type is None else f"{good}: 'sig' is complex; a recording holds real numbers"
    assert result.stdout.strip().splitlines() == [good_says, f"{path}: variable 'sig' has {part}: a corrupt file"]


def test_mat_the_fuzzer_crashed_scipy_with_is_refused(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = tmp_path / "crash.mat"
    path.write_bytes(FUZZ_CRASH_COMPLEX_TYPE0)
    code = f"from ppg_stream.replay import RecordingError, load_recording\ntry:\n    load_recording({str(path)!r})\nexcept RecordingError as e:\n    print(e)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"{path}: variable 'sig' has real data of unknown type 0: a corrupt file"


def test_mat_declaring_a_billion_samples_is_refused_before_loading(tmp_path):
    import struct

    data = _mat_bytes({"sig": np.zeros((6, 100))})
    dims = struct.pack("<ii", 6, 100)
    assert data.count(dims) == 1
    (tmp_path / "x.mat").write_bytes(data.replace(dims, struct.pack("<ii", 6, 10**9)))
    with pytest.raises(RecordingError, match="1,000,000,000 samples is more than the 100,000,000"):
        load_recording(tmp_path / "x.mat")


def test_compressed_ieee_layout_still_reads(tmp_path):
    sig = np.random.default_rng(1).normal(size=(6, 2000))
    (tmp_path / "DATA_99_TYPE01.mat").write_bytes(_mat_bytes({"sig": sig, "note": "x"}, do_compression=True))
    (tmp_path / "DATA_99_TYPE01_BPMtrace.mat").write_bytes(_mat_bytes({"BPM0": np.full((5, 1), 80.0)}, do_compression=True))
    rec = load_recording(tmp_path / "DATA_99_TYPE01.mat")
    np.testing.assert_array_equal(rec.ppg, sig[1:3].T)
    np.testing.assert_array_equal(rec.labels_bpm, np.full(5, 80.0))


def _dalia_dict(**changes):
    data = {"signal": {"wrist": {"BVP": np.zeros((640, 1)), "ACC": np.zeros((320, 3))}}, "label": np.zeros(3), "subject": "S1"}
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "data, message",
    [
        (_dalia_dict(signal={"wrist": {"BVP": np.zeros((640, 1)) * 1j}}), r"signal\['wrist'\]\['BVP'\] is complex \(complex128\)"),
        (_dalia_dict(label=np.zeros(3, dtype=np.complex64)), "label is complex"),
        (_dalia_dict(subject=["S", "1"]), "'subject' must be a name of 1-200 characters, got a list"),
        (_dalia_dict(subject="   "), "got an empty name"),
    ],
)
def test_dalia_content_that_is_not_a_recording(tmp_path, data, message):
    (tmp_path / "S1.pkl").write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(RecordingError, match=message):
        load_recording(tmp_path / "S1.pkl")


def test_dalia_subject_that_is_not_utf8_becomes_a_usable_name(tmp_path):
    (tmp_path / "S1.pkl").write_bytes(pickle.dumps(_dalia_dict(subject="S\udcff1 "), protocol=2))
    assert load_recording(tmp_path / "S1.pkl").subject == "S\ufffd1"


def test_pickle_larger_than_memory_is_refused_before_reading(tmp_path):
    path = tmp_path / "S1.pkl"
    with path.open("wb") as f:
        f.truncate(4 << 40)  # a sparse 4 TiB file: no disk used
    with pytest.raises(RecordingError, match=r"unpickling this file would need 12\.0 TiB of memory"):
        load_recording(path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"fs_ppg": 1e300}, "PPG sampling rate 1e\\+300 Hz is outside 8-10000 Hz"),
        ({"fs_ppg": 4.0}, "PPG sampling rate 4 Hz is outside"),
        ({"t_ppg": np.array([0.0, 1e6])}, "PPG spans 1e\\+06 s; a recording may span at most 86400 s"),
        ({"ppg": np.zeros((2, 1), dtype=complex)}, "PPG must hold real numbers, got complex128"),
        ({"subject": ""}, "the subject must be a name"),
    ],
)
def test_recording_invariants(changes, message):
    from ppg_stream.replay.recording import Recording

    fields = {"subject": "x", "ppg": np.zeros((2, 1)), "t_ppg": np.array([0.0, 0.02]), "fs_ppg": 50.0, **changes}
    with pytest.raises(RecordingError, match=message):
        Recording(**fields)


@pytest.mark.slow
def test_running_out_of_memory_while_reading_is_still_one_line(tmp_path):
    """The readers bound what a file may ask for, but a machine can be short of memory anyway."""
    import subprocess
    import sys
    import textwrap

    from tests.conftest import ROOT

    path = tmp_path / "big.csv"
    with path.open("w") as f:
        f.write("t,ppg\n")
        f.writelines(f"{i / 50:.2f},{i % 7}\n" for i in range(1_500_000))
    code = textwrap.dedent(
        f"""
        import resource
        from ppg_stream.replay import RecordingError, load_recording
        with open("/proc/self/status") as f:
            used = int(next(line.split()[1] for line in f if line.startswith("VmSize:"))) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (used + (16 << 20), resource.RLIM_INFINITY))  # 16 MiB more: not enough
        try:
            load_recording({str(path)!r})
        except RecordingError as e:
            print(e)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: does not fit in the memory available"


def test_the_data_root_is_ppg_stream_data_else_shared_data_beside_the_checkout(monkeypatch, tmp_path):
    from ppg_stream.replay.data_sets import IEEE_SPC2015, data_dir, data_root
    from tests.conftest import ROOT

    monkeypatch.delenv("PPG_STREAM_DATA", raising=False)
    assert data_root() == ROOT.parent / "shared" / "data"
    monkeypatch.setenv("PPG_STREAM_DATA", str(tmp_path))
    assert data_dir(IEEE_SPC2015) == tmp_path / "ieee-spc2015"

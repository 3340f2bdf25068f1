"""Fuzz targets for what a user hands ppg-stream as a file: the restricted unpickler, the DaLiA, CSV and
`.mat` readers (each recording then replayed through the preprocessor: every window it spans is cut,
skipped, invalid or counted as incomplete, never silently missing), and ONNX models (loaded, checked
against the contract and warmed up by the inference engine).

Run as `python -m tests.fuzz_readers TARGET --examples N [--seed S]` (what `test_fuzz_readers.py`
does, in a child process: a crash in C code then fails a test instead of killing pytest). Each
target feeds hypothesis-made inputs (random bytes, mutations of valid files, and for pickles
opcode streams aimed at numpy's reconstruction paths) to a reader and allows exactly two outcomes:
a value, or the reader's own one-line error. Before each call the input is written to
`$FUZZ_LAST_INPUT`, so the input of a hard crash can be shown. The child's address space is capped,
so an allocation a file provokes fails inside the reader rather than on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import os
import pickle
import resource
import struct
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

ADDRESS_SPACE_BYTES = 6 << 30
P = pickle


# ---------------------------------------------------------------- seeds: valid files of each format


def _dalia_like() -> dict:
    return {
        "signal": {"wrist": {"BVP": np.arange(12.0).reshape(-1, 1), "ACC": np.ones((6, 3)), "TEMP": np.zeros((2, 1), dtype=">f4")}},
        "label": np.array([70.0, 71.5]),
        "rpeaks": np.array([3, 9], dtype=np.int64),
        "questionnaire": {"AGE": np.int64(30), "WEIGHT": np.float64(70.5), "Gender": " m", "flags": (True, None, b"\x00\xff")},
        "activity": np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3)),
        "subject": "S1",
    }


def _dalia_file(n_bvp: int) -> bytes:
    """A whole PPG-DaLiA pickle as the project writes them (14 s or 47 s of 64 Hz BVP)."""
    from ppg_stream.replay.dalia import write_dalia

    rng = np.random.default_rng(n_bvp)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "S1.pkl"
        write_dalia(path, "S1", rng.normal(size=(n_bvp, 1)), rng.normal(size=(n_bvp // 2, 3)) * 0.01, np.full(max(1, (n_bvp // 64 - 8) // 2 + 1), 70.0),
                    with_chest=False)
        return path.read_bytes()


def py2_array_pickle(values: np.ndarray) -> bytes:
    """A numpy array as Python 2's cPickle protocol 2 wrote it: type codes and data as byte strings."""
    def short_binstring(b: bytes) -> bytes:
        return P.SHORT_BINSTRING + bytes([len(b)]) + b

    data = values.astype("<f8").tobytes()
    shape = b"".join(P.BININT + struct.pack("<i", d) for d in values.shape)
    return (
        P.PROTO + b"\x02" + P.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n" + P.GLOBAL + b"numpy\nndarray\n"
        + P.BININT1 + b"\x00" + P.TUPLE1 + short_binstring(b"b") + P.TUPLE3 + P.REDUCE
        + P.MARK + P.BININT1 + b"\x01" + P.MARK + shape + P.TUPLE
        + P.GLOBAL + b"numpy\ndtype\n" + short_binstring(b"f8") + P.BININT1 + b"\x00" + P.BININT1 + b"\x01" + P.TUPLE3 + P.REDUCE
        + P.MARK + P.BININT1 + b"\x03" + short_binstring(b"<") + P.NONE + P.NONE + P.NONE
        + P.BININT + struct.pack("<i", -1) + P.BININT + struct.pack("<i", -1) + P.BININT1 + b"\x00" + P.TUPLE + P.BUILD
        + P.NEWFALSE + P.BINSTRING + struct.pack("<i", len(data)) + data + P.TUPLE + P.BUILD + P.STOP
    )


CRASH_PICKLE = (  # issue 9: segfaulted numpy through dtype.__setstate__
    b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNN\x87"
    b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb."
)
PICKLE_SEEDS = [pickle.dumps(_dalia_like(), protocol=p) for p in range(6)] + [py2_array_pickle(np.arange(4.0).reshape(2, 2)), CRASH_PICKLE]


def _mat_seeds() -> list[bytes]:
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    out = []
    for kwargs in ({"do_compression": True}, {"do_compression": False}, {"format": "4"}):
        buffer = io.BytesIO()
        savemat(buffer, {"sig": rng.normal(size=(6, 40)), "other": np.arange(3.0)}, **kwargs)
        out.append(buffer.getvalue())
    buffer = io.BytesIO()
    savemat(buffer, {"sig": rng.normal(size=(5, 30)).astype(np.float32), "name": "x"}, do_compression=True)
    out.append(buffer.getvalue())
    from tests.mat_files import FUZZ_CRASH_COMPLEX_TYPE0, sig_file

    return out + [FUZZ_CRASH_COMPLEX_TYPE0, sig_file(dims=(6, 20)), sig_file(dims=(5, 20), imag_type=9), sig_file(dims=(6, 20), compress=False, imag_type=9)]


# ---------------------------------------------------------------- strategies


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "big"]))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[pos:]
        else:  # a huge or negative count where a size may sit
            data[pos : pos + 4] = struct.pack("<I", draw(st.sampled_from([0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 1 << 30])))
    return bytes(data)


_CODES = ["f8", "f4", "f2", "i1", "i2", "i4", "i8", "u1", "u8", "b1", "c8", "c16", "O", "O8", "V8", "S3", "U2", ",f", "f8,i4", "M8", "f16", ""]
_ITEMSIZE = {"f8": 8, "f4": 4, "f2": 2, "i1": 1, "i2": 2, "i4": 4, "i8": 8, "u1": 1, "u8": 8, "b1": 1, "c8": 8, "c16": 16}
_GLOBALS = [("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.numeric", "_frombuffer"), ("numpy", "ndarray"), ("_codecs", "encode"), ("builtins", "bytes"),
            ("builtins", "eval"), ("numpy", "frombuffer")]


def _text(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return P.SHORT_BINUNICODE + bytes([len(b)]) + b if len(b) < 256 else P.BINUNICODE + struct.pack("<I", len(b)) + b


def _int(n: int) -> bytes:
    if -(2**31) <= n < 2**31:
        return P.BININT + struct.pack("<i", n)
    b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return P.LONG1 + bytes([len(b)]) + b


def _global(module: str, name: str) -> bytes:
    return P.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n"


def _call(func: bytes, *args: bytes) -> bytes:
    return func + P.MARK + b"".join(args) + P.TUPLE + P.REDUCE


@st.composite
def dtype_expr(draw) -> tuple[bytes, int | None]:
    """A dtype call, usually with a BUILD state close to numpy's own; returns (opcodes, itemsize or None)."""
    code = draw(st.sampled_from(_CODES))
    flags = [draw(st.sampled_from([P.NEWFALSE, P.NEWTRUE, _int(0), _int(1), _int(2), P.NONE])) for _ in range(draw(st.integers(0, 3)))]
    out = _call(_global("numpy", "dtype"), _text(code), *flags)
    if draw(st.integers(0, 4)):
        fields = [
            _int(draw(st.sampled_from([3, 3, 3, 4, 1, 2**40]))),
            _text(draw(st.sampled_from(["<", ">", "|", "=", "x", ""]))),
            *(draw(st.sampled_from([P.NONE, P.NONE, P.NONE, P.EMPTY_TUPLE, _text("a"), P.MARK + P.NONE * 3 + P.TUPLE])) for _ in range(3)),
            _int(draw(st.sampled_from([-1, -1, 0, 8, 2**31 - 1]))),
            _int(draw(st.sampled_from([-1, -1, 0, 8, -(2**31)]))),
            _int(draw(st.sampled_from([0, 0, 63, -1]))),
        ]
        if draw(st.integers(0, 5)) == 0:
            del fields[draw(st.integers(0, len(fields) - 1))]
        if draw(st.integers(0, 5)) == 0:
            fields.append(draw(st.sampled_from([P.NONE, P.EMPTY_DICT])))
        out += P.MARK + b"".join(fields) + P.TUPLE + P.BUILD
    return out, _ITEMSIZE.get(code)


@st.composite
def array_expr(draw) -> bytes:
    """numpy's array reduction: _reconstruct, then BUILD with (version, shape, dtype, fortran, data)."""
    dims = draw(st.lists(st.sampled_from([0, 1, 2, 3, 5, 10**12, 2**40, 2**62, -1]), max_size=4))
    if draw(st.booleans()):
        dims = [d for d in dims if 0 <= d <= 5]
    shape = P.MARK + b"".join(_int(d) for d in dims) + P.TUPLE
    dtype, itemsize = draw(dtype_expr())
    count = 1
    for d in dims:
        count *= max(d, 0)
    exact = itemsize is not None and count * itemsize <= 4096
    size = count * itemsize if exact and draw(st.integers(0, 3)) else draw(st.integers(0, 64))
    payload = draw(st.binary(min_size=size, max_size=size))
    data = draw(st.sampled_from(["bytes", "bytes", "latin1", "encode", "list", "int"]))
    if data == "bytes":
        data_ops = P.BINBYTES + struct.pack("<I", len(payload)) + payload
    elif data == "latin1":
        data_ops = P.BINSTRING + struct.pack("<i", len(payload)) + payload
    elif data == "encode":
        data_ops = _call(_global("_codecs", "encode"), _text(payload.decode("latin-1")), _text(draw(st.sampled_from(["latin1", "rot13", "utf-16"]))))
    elif data == "list":
        data_ops = P.EMPTY_LIST
    else:
        data_ops = _int(7)
    cls = _global(*draw(st.sampled_from([("numpy", "ndarray"), ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "bytes")])))
    out = _call(_global("numpy._core.multiarray", "_reconstruct"), cls, P.MARK + _int(0) + P.TUPLE, _text("b"))
    state = [_int(draw(st.sampled_from([1, 1, 1, 2]))), shape, dtype, draw(st.sampled_from([P.NEWFALSE, P.NEWTRUE, _int(2)])), data_ops]
    if draw(st.integers(0, 5)) == 0:
        state = state[1:]
    return out + P.MARK + b"".join(state) + P.TUPLE + P.BUILD


@st.composite
def scalar_or_frombuffer_expr(draw) -> bytes:
    dtype, itemsize = draw(dtype_expr())
    size = itemsize if itemsize and draw(st.booleans()) else draw(st.integers(0, 20))
    payload = P.SHORT_BINBYTES + bytes([size]) + draw(st.binary(min_size=size, max_size=size))
    if draw(st.booleans()):
        return _call(_global("numpy._core.multiarray", "scalar"), dtype, *([payload] if draw(st.integers(0, 5)) else []))
    shape = P.MARK + _int(1) + P.TUPLE if draw(st.booleans()) else P.MARK + _int(draw(st.sampled_from([0, 2, 10**12, -1]))) + P.TUPLE
    return _call(_global("numpy._core.numeric", "_frombuffer"), payload, dtype, shape, _text(draw(st.sampled_from(["C", "F", "K"]))))


def value_expr() -> st.SearchStrategy[bytes]:
    atoms = st.one_of(
        st.integers(-(2**70), 2**70).map(_int),
        st.text(max_size=8).map(_text),
        st.sampled_from([P.NONE, P.NEWTRUE, P.NEWFALSE, P.EMPTY_TUPLE, P.EMPTY_LIST, P.EMPTY_DICT]),
        st.sampled_from([_global(*g) for g in _GLOBALS]),
        st.sampled_from([  # opcodes that must be refused or checked, and sizes no file can hold
            P.NEWOBJ, P.INST + b"os\nsystem\n", P.OBJ, P.EXT1 + b"\x01", P.EMPTY_SET, P.STACK_GLOBAL, P.DUP, P.POP, P.MEMOIZE,
            P.BINGET + b"\x00", P.BINPUT + b"\x00", P.INT + b"9" * 5000 + b"\n", P.STRING + b"'\\x'\n",
            P.BINBYTES8 + struct.pack("<Q", 2**62), P.FRAME + struct.pack("<Q", 2**60), P.BYTEARRAY8 + struct.pack("<Q", 2**64 - 1),
            P.LONG4 + struct.pack("<i", 2**31 - 1), P.BINUNICODE8 + struct.pack("<Q", 2**40),
        ]),
        dtype_expr().map(lambda pair: pair[0]),
        array_expr(),
        scalar_or_frombuffer_expr(),
    )
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda xs: P.MARK + b"".join(xs) + P.LIST),
            st.lists(inner, max_size=3).map(lambda xs: P.MARK + b"".join(xs) + P.TUPLE),
            st.lists(st.tuples(st.one_of(st.text(max_size=4).map(_text), inner), inner), max_size=3).map(
                lambda kv: P.EMPTY_DICT + P.MARK + b"".join(k + v for k, v in kv) + P.SETITEMS
            ),
        ),
        max_leaves=8,
    )


@st.composite
def opcode_stream(draw) -> bytes:
    """Well-formed opcode streams aimed at numpy's dtype, array, scalar and buffer reconstruction."""
    return P.PROTO + bytes([draw(st.integers(0, 5))]) + draw(value_expr()) + P.STOP


_CELLS = ["0", "1", "-1", "0.02", "1e-300", "5e-324", "1e308", "inf", "-inf", "nan", "", " ", "abc", '"1"', '"', "1,2",
          "\x00", "\r", "1_000", "0x10", "٣"]


@st.composite
def csv_text(draw) -> bytes:
    header = draw(st.sampled_from(["t,ppg", "t,ppg,acc_x,acc_y,acc_z", "ppg,t", "t,ppg,acc_x", "T , PPG", "", "t;ppg"]))
    rows = [header]
    t = draw(st.floats(-1e6, 1e6, allow_nan=False))
    for _ in range(draw(st.integers(0, 30))):
        if draw(st.booleans()):
            t += draw(st.sampled_from([0.02, 0.001, 20.0, 1e-300, 0.0, -0.02, 1e9]))
            cells = [repr(t)] + [draw(st.sampled_from(_CELLS)) for _ in range(draw(st.integers(0, 5)))]
        else:
            cells = [draw(st.sampled_from(_CELLS)) for _ in range(draw(st.integers(0, 6)))]
        if draw(st.integers(0, 30)) == 0:
            cells.append(draw(st.sampled_from(["x", "1", '"'])) * draw(st.sampled_from([70_000, 140_000])))
        rows.append(",".join(cells))
    text = draw(st.sampled_from(["\n", "\r\n", "\r"])).join(rows)
    raw = text.encode("utf-8")
    if draw(st.integers(0, 10)) == 0:
        raw += draw(st.binary(max_size=64))
    return raw


# ---------------------------------------------------------------- targets


def _record(data: bytes) -> None:
    where = os.environ.get("FUZZ_LAST_INPUT")
    if where:
        Path(where).write_bytes(data)


def _check_pickle(data: bytes) -> None:
    from ppg_stream.replay.safe_pickle import MalformedPickleError, UnsafePickleError, safe_loads

    _record(data)
    try:
        safe_loads(data)
    except (MalformedPickleError, UnsafePickleError):
        pass


def _check_file(data: bytes, suffix: str, workdir: Path) -> None:
    from ppg_stream.replay import RecordingError, load_recording

    _record(data)
    path = workdir / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        rec = load_recording(path)
    except RecordingError as e:
        assert "\n" not in str(e), str(e)
        return
    # what a reader returns is a recording the stream can take
    assert np.all(np.diff(rec.t_ppg) > 0) and np.isfinite(rec.t_ppg).all()
    assert 8.0 <= rec.fs_ppg <= 10_000.0 and rec.ppg.dtype == np.float64
    _check_replay(rec)


def _check_replay(rec) -> None:
    """The recording through the replay source and the preprocessor, as `ppg-stream --replay` feeds them:
    every window it spans is accounted for (cut, skipped over a gap, invalid, or incomplete)."""
    from ppg_stream.replay.recording import window_count
    from ppg_stream.stream.core.preprocess import StreamPreprocessor
    from ppg_stream.stream.core.student_spec import student_spec
    from ppg_stream.stream.sources.replay import ReplaySource

    spec = student_spec("fuzz", "0", "", "")
    source = ReplaySource(rec, speed=None)
    pre = StreamPreprocessor(spec, dict(source.rates))
    cut = 0
    for _, chunks in source.blocks():
        for chunk in chunks:
            for piece in pre.pieces(chunk):
                pre.push(piece)
                cut += len(pre.windows().k)
    c = pre.counters
    accounted = cut + c.skipped_windows + c.invalid_windows + pre.undecided_windows()
    assert accounted >= window_count(rec.duration_s) - 1, (cut, c, pre.undecided_windows(), rec.duration_s)


def _onnx_seeds() -> list[bytes]:
    from ppg_stream.stream.core.spectral_model import build_spectral_model
    from tests.models_for_tests import batch_of_one_model, first_row_only_model, identity_model, with_metadata

    model = build_spectral_model()
    return [model.SerializeToString(), first_row_only_model().SerializeToString(), batch_of_one_model().SerializeToString(),
            identity_model().SerializeToString(), with_metadata(model, fs="64", window_s="4").SerializeToString()]


def _check_onnx(data: bytes, workdir: Path) -> None:
    """A model file either runs (loaded, contract checked, warmed up on batches, one window decoded to a
    finite estimate) or is refused with the engine's own one-line error."""
    from ppg_stream.stream.core.decode import decode_probabilities, softmax
    from ppg_stream.stream.core.engine import InferenceEngine, ModelLoadError

    _record(data)
    path = workdir / "fuzz.onnx"
    path.write_bytes(data)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # nothing may reach stdout: `--stdout` writes JSON there
            engine = InferenceEngine(path)
            engine.warm_up()
    except ModelLoadError as e:
        assert "\n" not in str(e), str(e)
        return
    finally:
        assert printed.getvalue() == "", printed.getvalue()[:300]
    x = np.random.default_rng(0).normal(size=(3, len(engine.spec.channels), engine.spec.window_samples)).astype(np.float32)
    logits = engine.run(x)
    assert logits.shape == (3, len(engine.spec.bins_bpm))
    if np.isfinite(logits).all():
        decode_probabilities(softmax(np.ascontiguousarray(logits, dtype=np.float64)), engine.spec.bins_bpm)


def run(target: str, examples: int, fixed_seed: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ppg-fuzz-"))
    common = settings(max_examples=examples, database=None, deadline=None, derandomize=False,
                      suppress_health_check=list(HealthCheck), print_blob=True)
    if target == "pickle":
        strategy = st.one_of(st.binary(max_size=200), mutated(PICKLE_SEEDS), opcode_stream())

        @common
        @given(strategy)
        def fuzz(data: bytes) -> None:
            _check_pickle(data)
    elif target == "csv":
        @common
        @given(st.one_of(csv_text(), st.binary(max_size=200)))
        def fuzz(data: bytes) -> None:
            _check_file(data, ".csv", workdir)
    elif target == "dalia":
        seeds = [_dalia_file(n) for n in (900, 3000)]

        @common
        @given(st.one_of(mutated(seeds), st.binary(max_size=200)))
        def fuzz(data: bytes) -> None:
            _check_file(data, ".pkl", workdir)
    elif target == "onnx":
        seeds = _onnx_seeds()

        @common
        @given(mutated(seeds))
        def fuzz(data: bytes) -> None:
            _check_onnx(data, workdir)
    elif target == "mat":
        seeds = _mat_seeds()

        @common
        @given(st.one_of(mutated(seeds), st.binary(max_size=300)))
        def fuzz(data: bytes) -> None:
            _check_file(data, ".mat", workdir)
    else:
        raise SystemExit(f"unknown target {target!r}")
    seed(fixed_seed)(fuzz)()  # a fixed seed: the same examples on every run
    with open("/proc/self/status") as f:  # VmHWM: this process only (ru_maxrss counts the parent it was forked from)
        peak_mib = int(next(line.split()[1] for line in f if line.startswith("VmHWM:"))) / 1024
    print(f"fuzz {target}: {examples} examples, peak RSS {peak_mib:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target", choices=["pickle", "dalia", "csv", "mat", "onnx"])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    faulthandler.enable()
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))
    run(args.target, args.examples, args.seed)


if __name__ == "__main__":
    main()

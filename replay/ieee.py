"""IEEE Signal Processing Cup 2015 `.mat` recordings (training 6-row and test 5-row layouts).

`sig` rows: [ECG,] PPG1, PPG2, ACC x, y, z at 125 Hz. Labels `BPM0` come from a file beside it:
`DATA_01_TYPE01.mat` → `DATA_01_TYPE01_BPMtrace.mat`; `TEST_S01_T01.mat` → `True_S01_T01.mat`.

A variable's class and dimensions are read from the file's headers first (scipy's `whosmat`), so
text, cells, structs and oversized matrices are refused before anything is loaded; compressed
variables are checked for how far they really inflate, and data elements for a type scipy can read
(`ppg_stream.replay.mat_guard`), before scipy sees the file.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from .limits import check_allocation, check_sample_count, reader_budget_bytes, regular_file_size
from .mat_guard import check_variables
from .recording import Recording, RecordingError, subject_name, uniform_times

FS = 125.0
NUMERIC_CLASSES = frozenset({"double", "single", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
CLASS_WORDS = {"char": "text", "cell": "a cell array", "struct": "a struct", "sparse": "a sparse matrix", "logical": "logical (true/false)"}
SIG_HELP = "5 or 6 rows (PPG1, PPG2, ACC x/y/z, ECG first if 6)"


def label_path_for(path: Path) -> Path | None:
    """The ground-truth file that accompanies a recording, if it is there."""
    candidates = [path.with_name(path.stem + "_BPMtrace.mat")]
    if path.stem.startswith("TEST_"):
        candidates.append(path.with_name("True_" + path.stem[len("TEST_"):] + ".mat"))
    return next((c for c in candidates if c.exists()), None)


def read_ieee(path: str | Path) -> Recording:
    path = Path(path)
    sig = read_mat_variable(path, "sig", _check_sig_shape)
    rows = sig[1:] if sig.shape[0] == 6 else sig
    ppg, acc = rows[0:2].T.copy(), rows[2:5].T.copy()
    labels = None
    label_file = label_path_for(path)
    if label_file is not None:
        labels = read_mat_variable(label_file, "BPM0", _check_label_shape).reshape(-1)
    t = uniform_times(ppg.shape[0], FS)
    return Recording(
        subject=subject_name(path.stem), ppg=ppg, t_ppg=t, fs_ppg=FS, acc=acc, t_acc=t, fs_acc=FS, labels_bpm=labels, source=str(path)
    )


def _check_sig_shape(path: Path, shape: tuple[int, ...]) -> None:
    if len(shape) != 2 or shape[0] not in (5, 6) or shape[1] < 2:
        raise RecordingError(f"{path}: 'sig' must have {SIG_HELP}, got shape {shape}")
    check_sample_count(shape[1], str(path))


def _check_label_shape(path: Path, shape: tuple[int, ...]) -> None:
    if len(shape) > 2 or (len(shape) == 2 and min(shape) > 1):
        raise RecordingError(f"{path}: reference heart rate 'BPM0' must be a vector, got shape {shape}")
    check_sample_count(math.prod(shape), str(path))


def read_mat_variable(path: Path, name: str, check_shape) -> np.ndarray:
    """One real numeric matrix from a MATLAB v4-v7 file, as float64; every refusal is one line."""
    from scipy.io import loadmat, whosmat
    from scipy.io.matlab import matfile_version

    size = regular_file_size(path)
    try:
        with path.open("rb") as f:
            major, _ = matfile_version(f)
    except Exception as e:  # scipy raises several types for files that are not MATLAB at all
        raise RecordingError(f"{path}: not a MATLAB .mat file ({_reason(e)})") from None
    if major == 2:
        raise RecordingError(
            f"{path}: a MATLAB v7.3 file (HDF5 inside), which this reader does not take; save it as v7: "
            f"in MATLAB or Octave, load('{path.name}'); save('{path.stem}_v7.mat', '{name}', '-v7')"
        )
    if major == 1:
        check_variables(path, {name}, reader_budget_bytes())
    try:
        with warnings.catch_warnings():  # scipy warns on odd headers; the error below is the one line
            warnings.simplefilter("ignore")
            variables = {var: (tuple(shape), cls) for var, shape, cls in whosmat(str(path))}
    except Exception as e:
        raise RecordingError(f"{path}: not a readable MATLAB file ({_reason(e)})") from None
    if name not in variables:
        raise RecordingError(f"{path}: no variable '{name}' (an IEEE SPC 2015 recording has one)")
    shape, cls = variables[name]
    if cls not in NUMERIC_CLASSES:
        raise RecordingError(f"{path}: '{name}' is {CLASS_WORDS.get(cls, cls)}, expected a matrix of numbers")
    check_shape(path, shape)
    elements = math.prod(shape)
    check_allocation(3 * 8 * elements, f"'{name}' {shape}", str(path))
    if major == 0:
        check_allocation(2 * size, "this MATLAB v4 file", str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = loadmat(str(path), variable_names=[name])[name]
    except Exception as e:
        raise RecordingError(f"{path}: not a readable MATLAB file ({_reason(e)})") from None
    if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.number):
        raise RecordingError(f"{path}: '{name}' is not a matrix of numbers")
    if np.iscomplexobj(value):
        raise RecordingError(f"{path}: '{name}' is complex; a recording holds real numbers")
    if value.shape != shape:
        raise RecordingError(f"{path}: '{name}' has shape {value.shape} where its header says {shape}")
    return value.astype(np.float64, copy=False)


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__

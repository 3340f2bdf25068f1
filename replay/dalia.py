"""PPG-DaLiA `S*.pkl`: read the wrist BVP/ACC and labels; write files in exactly that structure.

Structure (Reiss et al. 2019): a dict with `signal`, `label`, `activity`, `questionnaire`, `rpeaks`,
`subject`. `signal['wrist']['BVP']` (n, 1) at 64 Hz, `signal['wrist']['ACC']` (n, 3) at 32 Hz in
units of 1/64 g, `label` HR (bpm) per 8 s window moved by 2 s.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .limits import check_allocation, check_sample_count, regular_file_size
from .recording import MAX_SUBJECT_CHARS, Recording, RecordingError, subject_name, uniform_times
from .safe_pickle import safe_load

FS_BVP = 64.0
FS_ACC = 32.0
FS_WRIST_SLOW = 4.0
FS_CHEST = 700.0
ACC_UNITS_PER_G = 64.0
# peak memory while unpickling, per byte of file: protocol 2 keeps each array's latin-1 text and its
# bytes in the pickle memo until the end, beside the array itself
UNPICKLE_BYTES_PER_FILE_BYTE = 3


def read_dalia(path: str | Path) -> Recording:
    """Load a DaLiA pickle through the restricted unpickler; wrist BVP + ACC (converted to g) + labels."""
    path = Path(path)
    size = regular_file_size(path)
    check_allocation(UNPICKLE_BYTES_PER_FILE_BYTE * size, "unpickling this file", str(path))
    try:
        with path.open("rb") as f:
            data = safe_load(f, size)
    except pickle.UnpicklingError as e:
        raise RecordingError(f"{path}: not a loadable PPG-DaLiA pickle ({e})") from None
    except OSError as e:
        raise RecordingError(f"{path}: cannot read ({e.strerror or e})") from None
    return dalia_from_dict(data, str(path))


def dalia_from_dict(data: Any, where: str) -> Recording:
    """Validate the DaLiA structure and turn it into a Recording (pure; no I/O)."""
    if not isinstance(data, dict):
        raise RecordingError(f"{where}: not a PPG-DaLiA pickle (top level is {type(data).__name__}, expected dict)")
    for key in ("signal", "label", "subject"):
        if key not in data:
            raise RecordingError(f"{where}: not a PPG-DaLiA pickle (missing key '{key}')")
    wrist = data["signal"].get("wrist") if isinstance(data["signal"], dict) else None
    if not isinstance(wrist, dict) or "BVP" not in wrist:
        raise RecordingError(f"{where}: not a PPG-DaLiA pickle (missing signal['wrist']['BVP'])")
    subject = data["subject"]
    if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_CHARS:
        raise RecordingError(f"{where}: 'subject' must be a name of 1-{MAX_SUBJECT_CHARS} characters, got {_kind(subject)}")
    subject = subject_name(subject)
    bvp = _array(wrist["BVP"], where, "signal['wrist']['BVP']")
    if bvp.ndim == 1:
        bvp = bvp[:, None]
    if bvp.ndim != 2 or bvp.shape[1] != 1 or bvp.shape[0] < 2:
        raise RecordingError(f"{where}: signal['wrist']['BVP'] must have shape (n, 1), got {bvp.shape}")
    acc = t_acc = None
    if "ACC" in wrist:
        acc = _array(wrist["ACC"], where, "signal['wrist']['ACC']")
        if acc.ndim != 2 or acc.shape[1] != 3:
            raise RecordingError(f"{where}: signal['wrist']['ACC'] must have shape (n, 3), got {acc.shape}")
        acc = acc / ACC_UNITS_PER_G
        t_acc = uniform_times(acc.shape[0], FS_ACC)
    labels = _array(data["label"], where, "label").reshape(-1)
    return Recording(
        subject=subject,
        ppg=bvp,
        t_ppg=uniform_times(bvp.shape[0], FS_BVP),
        fs_ppg=FS_BVP,
        acc=acc,
        t_acc=t_acc,
        fs_acc=FS_ACC if acc is not None else None,
        labels_bpm=labels if labels.size else None,
        source=where,
    )


def _array(value: Any, where: str, name: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.number):
        raise RecordingError(f"{where}: {name} is not a numeric array")
    if np.iscomplexobj(value):
        raise RecordingError(f"{where}: {name} is complex ({value.dtype}); a recording holds real numbers")
    check_sample_count(value.shape[0] if value.ndim else 1, f"{where}: {name}")
    return value.astype(np.float64, copy=False)


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return f"{len(value)} characters" if value.strip() else "an empty name"
    return f"a {type(value).__name__}"


def write_dalia(
    path: str | Path,
    subject: str,
    bvp: np.ndarray,
    acc_g: np.ndarray,
    labels_bpm: np.ndarray,
    rpeaks: np.ndarray | None = None,
    activity: np.ndarray | None = None,
    with_chest: bool = True,
) -> None:
    """Write a pickle in PPG-DaLiA's exact structure (the project's own data only: tests and the demo).

    Signals DaLiA has but we do not simulate (EDA, TEMP, chest sensors) are present with the right
    rates and shapes, filled with plausible constants, so readers see the real layout.
    `with_chest=False` keeps the chest arrays empty (0 rows), which keeps a bundled demo small.
    """
    duration = bvp.shape[0] / FS_BVP
    n_slow = int(duration * FS_WRIST_SLOW)
    n_chest = int(duration * FS_CHEST) if with_chest else 0
    chest = {
        "ACC": np.zeros((n_chest, 3)),
        "ECG": np.zeros((n_chest, 1)),
        "EMG": np.zeros((n_chest, 1)),
        "EDA": np.full((n_chest, 1), 5.0),
        "Temp": np.full((n_chest, 1), 33.0, dtype=np.float32),
        "Resp": np.zeros((n_chest, 1)),
    }
    data = {
        "signal": {
            "wrist": {
                "ACC": np.round(np.asarray(acc_g, dtype=np.float64) * ACC_UNITS_PER_G),
                "BVP": np.asarray(bvp, dtype=np.float64).reshape(-1, 1),
                "EDA": np.full((n_slow, 1), 0.4),
                "TEMP": np.full((n_slow, 1), 32.5),
            },
            "chest": chest,
        },
        "label": np.asarray(labels_bpm, dtype=np.float64),
        "activity": np.zeros((n_slow, 1)) if activity is None else np.asarray(activity, dtype=np.float64).reshape(-1, 1),
        "questionnaire": {"WEIGHT": 70.0, "Gender": " m", "AGE": 30, "HEIGHT": 178.0, "SKIN": 3, "SPORT": 4},
        "rpeaks": np.zeros(0, dtype=np.int64) if rpeaks is None else np.asarray(rpeaks, dtype=np.int64),
        "subject": subject,
    }
    with Path(path).open("wb") as f:
        pickle.dump(data, f, protocol=2)

"""CSV recordings for everyone else: header `t,ppg[,acc_x,acc_y,acc_z]`, `t` in seconds.

Empty or `nan` cells are kept as NaN (the stream treats them as missing samples). Timestamps must
increase; the sampling rate is the median of their differences.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from replay.recording import Recording, RecordingError

ACC_COLUMNS = ("acc_x", "acc_y", "acc_z")


def read_csv(path: str | Path) -> Recording:
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise RecordingError(f"{path}: cannot read as CSV text ({e})") from None
    if not rows:
        raise RecordingError(f"{path}: empty file (expected a header 't,ppg[,acc_x,acc_y,acc_z]')")
    header = [h.strip().lower() for h in rows[0]]
    if "t" not in header or "ppg" not in header:
        raise RecordingError(f"{path}: header must name columns 't' and 'ppg' (got {','.join(header)})")
    has_acc = all(c in header for c in ACC_COLUMNS)
    if any(c in header for c in ACC_COLUMNS) and not has_acc:
        raise RecordingError(f"{path}: accelerometer needs all of acc_x, acc_y, acc_z")
    cols = ["t", "ppg", *(ACC_COLUMNS if has_acc else ())]
    idx = [header.index(c) for c in cols]
    values = np.empty((len(rows) - 1, len(cols)), dtype=np.float64)
    for r, row in enumerate(rows[1:], start=2):
        try:
            values[r - 2] = [_cell(row[i]) for i in idx]
        except (IndexError, ValueError):
            raise RecordingError(f"{path}: line {r}: expected numbers in columns {','.join(cols)}, got {','.join(row)!r}") from None
    t = values[:, 0]
    if len(t) < 2:
        raise RecordingError(f"{path}: needs at least two samples")
    if np.isnan(t).any():
        raise RecordingError(f"{path}: line {int(np.flatnonzero(np.isnan(t))[0]) + 2}: missing timestamp")
    dt = np.diff(t)
    if (dt <= 0).any():
        bad = int(np.flatnonzero(dt <= 0)[0]) + 3
        raise RecordingError(f"{path}: line {bad}: timestamp does not increase (t must be strictly increasing)")
    fs = 1.0 / float(np.median(dt))
    t = t - t[0]
    acc = values[:, 2:5].copy() if has_acc else None
    return Recording(
        subject=path.stem, ppg=values[:, 1:2].copy(), t_ppg=t, fs_ppg=fs,
        acc=acc, t_acc=t if has_acc else None, fs_acc=fs if has_acc else None, source=str(path),
    )


def _cell(text: str) -> float:
    text = text.strip()
    return float("nan") if text == "" else float(text)


def write_csv(path: str | Path, t: np.ndarray, ppg: np.ndarray, acc: np.ndarray | None = None) -> None:
    cols = [t, ppg.reshape(-1)] + ([acc[:, 0], acc[:, 1], acc[:, 2]] if acc is not None else [])
    header = "t,ppg" + (",acc_x,acc_y,acc_z" if acc is not None else "")
    np.savetxt(path, np.column_stack(cols), delimiter=",", header=header, comments="", fmt="%.6f")

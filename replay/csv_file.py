"""CSV recordings for everyone else: header `t,ppg[,acc_x,acc_y,acc_z]`, `t` in seconds.

A `reference_bpm.json` beside the file (`{name: [bpm or null per window]}`, as Wrist PPG During
Exercise ships it: replay/wrist_exercise.py) gives the recording its reference heart rate per window.

Empty or `nan` cells are kept as NaN (the stream treats them as missing samples). Timestamps must
be finite and increase; the sampling rate is the median of their differences. The file is read
line by line with every line's length bounded and the parsed samples counted against the memory
a reader may use, so `/dev/zero`, a sparse file or a binary file ends in one line, not an OOM kill.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from .limits import MAX_CSV_LINE_CHARS, check_allocation, check_sample_count, reader_budget_bytes, regular_file_size
from .recording import MAX_SOURCE_FS_HZ, MIN_SOURCE_FS_HZ, Recording, RecordingError, subject_name
from .reference import reference_for

ACC_COLUMNS = ("acc_x", "acc_y", "acc_z")
HEADER_HELP = "expected a header 't,ppg[,acc_x,acc_y,acc_z]'"
# memory per parsed value: the growing array, the numpy copy, and the Recording's own arrays
BYTES_PER_VALUE = 4 * 8
CHECK_EVERY_ROWS = 65_536


def read_csv(path: str | Path) -> Recording:
    path = Path(path)
    regular_file_size(path)
    try:
        with path.open(encoding="utf-8", newline="") as f:
            t, ppg, acc = _parse(f, path)
    except UnicodeDecodeError:
        raise RecordingError(f"{path}: not UTF-8 text (is it a binary file?)") from None
    except OSError as e:
        raise RecordingError(f"{path}: cannot read as CSV text ({e.strerror or e})") from None
    fs = _sampling_rate(t, path)
    t = t - t[0]
    return Recording(
        subject=subject_name(path.stem), ppg=ppg, t_ppg=t, fs_ppg=fs,
        acc=acc, t_acc=t if acc is not None else None, fs_acc=fs if acc is not None else None,
        labels_bpm=reference_for(path), source=str(path),
    )


def _bounded_lines(f: TextIO, path: Path) -> Iterator[str]:
    """Lines of at most MAX_CSV_LINE_CHARS characters; text without line ends is refused, not buffered."""
    number = 0
    while True:
        line = f.readline(MAX_CSV_LINE_CHARS + 1)
        if not line:
            return
        number += 1
        if "\x00" in line:
            raise RecordingError(f"{path}: line {number} holds a NUL byte: a binary file, not CSV text")
        if len(line) > MAX_CSV_LINE_CHARS:
            raise RecordingError(f"{path}: line {number} is longer than {MAX_CSV_LINE_CHARS:,} characters: not a recording CSV")
        yield line


def _parse(f: TextIO, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    reader = csv.reader(_bounded_lines(f, path))
    try:
        header_row = next(reader, None)
        if header_row is None:
            raise RecordingError(f"{path}: empty file ({HEADER_HELP})")
        header = [h.strip().lower() for h in header_row]
        if "t" not in header or "ppg" not in header:
            raise RecordingError(f"{path}: header must name columns 't' and 'ppg' (got {','.join(header)[:200]})")
        has_acc = all(c in header for c in ACC_COLUMNS)
        if any(c in header for c in ACC_COLUMNS) and not has_acc:
            raise RecordingError(f"{path}: accelerometer needs all of acc_x, acc_y, acc_z")
        cols = ["t", "ppg", *(ACC_COLUMNS if has_acc else ())]
        idx = [header.index(c) for c in cols]
        columns = [array("d") for _ in cols]
        budget = reader_budget_bytes()
        previous_t = -math.inf
        for row in reader:
            try:
                for column, i in zip(columns, idx):
                    column.append(_cell(row[i]))
            except (IndexError, ValueError):
                shown = ",".join(row)
                raise RecordingError(
                    f"{path}: line {reader.line_num}: expected numbers in columns {','.join(cols)}, got {shown[:80]!r}{'...' if len(shown) > 80 else ''}"
                ) from None
            t = columns[0][-1]
            if not math.isfinite(t):
                raise RecordingError(f"{path}: line {reader.line_num}: " + ("missing timestamp" if math.isnan(t) else f"timestamp {t} is not finite"))
            if t <= previous_t:
                raise RecordingError(f"{path}: line {reader.line_num}: timestamp does not increase (t must be strictly increasing)")
            previous_t = t
            rows = len(columns[0])
            if rows % CHECK_EVERY_ROWS == 0:
                check_sample_count(rows, str(path))
                check_allocation(rows * len(cols) * BYTES_PER_VALUE, f"{rows:,} rows and counting", str(path), budget)
    except csv.Error as e:
        raise RecordingError(f"{path}: line {reader.line_num}: not valid CSV ({e})") from None
    if len(columns[0]) < 2:
        raise RecordingError(f"{path}: needs at least two samples")
    values = [np.frombuffer(c, dtype=np.float64).copy() for c in columns]
    acc = np.column_stack(values[2:5]) if has_acc else None
    return values[0], values[1][:, None], acc


def _sampling_rate(t: np.ndarray, path: Path) -> float:
    with np.errstate(all="ignore"):
        spacing = float(np.median(np.diff(t)))
        fs = float(np.float64(1.0) / spacing)
    if MIN_SOURCE_FS_HZ <= fs <= MAX_SOURCE_FS_HZ:
        return fs
    hint = ""
    if MIN_SOURCE_FS_HZ <= fs * 1000 <= MAX_SOURCE_FS_HZ:
        hint = ": is t in milliseconds? it must be in seconds"
    raise RecordingError(
        f"{path}: the median time step {spacing:.6g} s gives {fs:.6g} Hz; ppg-stream takes "
        f"{MIN_SOURCE_FS_HZ:g}-{MAX_SOURCE_FS_HZ:g} Hz{hint}"
    )


def _cell(text: str) -> float:
    text = text.strip()
    return float("nan") if text == "" else float(text)


def write_csv(path: str | Path, t: np.ndarray, ppg: np.ndarray, acc: np.ndarray | None = None) -> None:
    cols = [t, ppg.reshape(-1)] + ([acc[:, 0], acc[:, 1], acc[:, 2]] if acc is not None else [])
    header = "t,ppg" + (",acc_x,acc_y,acc_z" if acc is not None else "")
    np.savetxt(path, np.column_stack(cols), delimiter=",", header=header, comments="", fmt="%.6f")

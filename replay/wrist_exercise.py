"""Wrist PPG During Exercise (Jarchi & Casson, Data 2017): replay-ready CSVs with an ECG reference.

The shared folder holds `<subject>_<activity>.csv` (header `t,ppg,acc_x,acc_y,acc_z`, 256 Hz, ACC in g)
and one `reference_bpm.json` beside them: `{name: [bpm or null per window]}`, window k covering
[2k, 2k+8) s (the window protocol), the mean heart rate of the ECG's annotated beats in that window.

`read_wrist_exercise` is the CSV reader plus that reference, so a replay of such a file reports its
error against the ECG, and the accuracy harness (`ppg-distill devices`) gets labelled windows from the
very preprocessing the stream runs. The CSV reader itself attaches the reference wherever a
`reference_bpm.json` with the file's name sits beside a CSV (replay/reference.py), so
`ppg-stream --replay s2_walk.csv` needs nothing more.
"""

from __future__ import annotations

from pathlib import Path

from .csv_file import read_csv
from .data_sets import WRIST_PPG_EXERCISE, data_dir, where_to_get
from .recording import Recording, RecordingError
from .reference import REFERENCE_FILE

# activity of a recording, from its file name (`s2_high_resistance_bike`) → the harness's activity names
ACTIVITY_WORDS = (("bike", "bike"), ("cycl", "bike"), ("walk", "walk"), ("run", "run"), ("rest", "rest"))


def activity_of(name: str) -> str:
    """'walk', 'run', 'bike', 'rest', or 'other', from a recording's name."""
    lowered = name.lower()
    for word, activity in ACTIVITY_WORDS:
        if word in lowered:
            return activity
    return "other"


def read_wrist_exercise(path: str | Path) -> Recording:
    """One recording of the data set, with its ECG reference (an error if the reference is missing)."""
    recording = read_csv(path)  # attaches the reference when it sits beside the file
    if recording.labels_bpm is None:
        raise RecordingError(f"{path}: no '{Path(path).stem}' in a {REFERENCE_FILE} beside it")
    return recording


def wrist_exercise_paths(directory: str | Path | None = None) -> list[Path]:
    """The data set's recordings (sorted), from `directory` or the data root; FileNotFoundError says where to get it."""
    folder = Path(directory) if directory is not None else data_dir(WRIST_PPG_EXERCISE)
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files or not (folder / REFERENCE_FILE).is_file():
        raise FileNotFoundError(f"no Wrist PPG During Exercise recordings (*.csv and {REFERENCE_FILE}) in {folder}: {where_to_get(WRIST_PPG_EXERCISE)}")
    return files

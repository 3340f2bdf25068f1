"""Pick the reader from the file name, so `--replay FILE` works for every supported format."""

from __future__ import annotations

from pathlib import Path

from replay.recording import Recording, RecordingError

FORMATS = ".pkl (PPG-DaLiA), .mat (IEEE SPC 2015), .csv (t,ppg[,acc_x,acc_y,acc_z])"


def load_recording(path: str | Path) -> Recording:
    """Read any supported recording; every failure is one RecordingError line (a last net for memory too:
    the readers bound what they allocate, but the machine may be short of it anyway)."""
    path = Path(path)
    try:
        return _load(path)
    except MemoryError:
        raise RecordingError(f"{path}: does not fit in the memory available") from None


def _load(path: Path) -> Recording:
    if not path.exists():
        raise RecordingError(f"{path}: no such file")
    if path.is_dir():
        raise RecordingError(f"{path}: is a directory, expected a recording file ({FORMATS})")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        from replay.dalia import read_dalia

        return read_dalia(path)
    if suffix == ".mat":
        from replay.ieee import read_ieee

        return read_ieee(path)
    if suffix == ".csv":
        from replay.csv_file import read_csv

        return read_csv(path)
    raise RecordingError(f"{path}: unknown format '{suffix}'; supported: {FORMATS}")

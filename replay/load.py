"""Pick the reader from the file name, so `--replay FILE` works for every supported format."""

from __future__ import annotations

from pathlib import Path

from .recording import Recording, RecordingError

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
        from .dalia import read_dalia

        return read_dalia(path)
    if suffix == ".mat":
        from .ieee import read_ieee

        return read_ieee(path)
    if suffix == ".csv":
        from .csv_file import read_csv

        return read_csv(path)
    raise RecordingError(f"{path}: unknown format '{suffix}'; supported: {FORMATS}")


RECORDING_SUFFIXES = (".pkl", ".mat", ".csv")


def is_label_file(path: Path) -> bool:
    """IEEE SPC 2015 ground-truth files sit beside the recordings; they are not recordings."""
    return path.suffix.lower() == ".mat" and (path.stem.endswith("_BPMtrace") or path.stem.startswith("True_"))


def recording_paths(path: str | Path) -> list[Path]:
    """A file as given, or every recording in a folder (sorted; label files left out)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in RECORDING_SUFFIXES and not is_label_file(p))
    if not found:
        raise RecordingError(f"{path}: a folder with no recordings ({FORMATS})")
    return found

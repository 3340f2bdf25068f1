"""IEEE Signal Processing Cup 2015 `.mat` recordings (training 6-row and test 5-row layouts).

`sig` rows: [ECG,] PPG1, PPG2, ACC x, y, z at 125 Hz. Labels `BPM0` come from a file beside it:
`DATA_01_TYPE01.mat` → `DATA_01_TYPE01_BPMtrace.mat`; `TEST_S01_T01.mat` → `True_S01_T01.mat`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replay.recording import Recording, RecordingError, uniform_times

FS = 125.0


def label_path_for(path: Path) -> Path | None:
    """The ground-truth file that accompanies a recording, if it is there."""
    candidates = [path.with_name(path.stem + "_BPMtrace.mat")]
    if path.stem.startswith("TEST_"):
        candidates.append(path.with_name("True_" + path.stem[len("TEST_"):] + ".mat"))
    return next((c for c in candidates if c.exists()), None)


def read_ieee(path: str | Path) -> Recording:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    try:
        mat = loadmat(path)
    except (MatReadError, ValueError, OSError, TypeError) as e:
        raise RecordingError(f"{path}: not a MATLAB .mat file ({e})") from None
    if "sig" not in mat:
        raise RecordingError(f"{path}: no variable 'sig' (an IEEE SPC 2015 recording has one)")
    sig = np.asarray(mat["sig"], dtype=np.float64)
    if sig.ndim != 2 or sig.shape[0] not in (5, 6) or sig.shape[1] < 2:
        raise RecordingError(f"{path}: 'sig' must have 5 or 6 rows (PPG1, PPG2, ACC x/y/z, ECG first if 6), got shape {sig.shape}")
    rows = sig[1:] if sig.shape[0] == 6 else sig
    ppg, acc = rows[0:2].T.copy(), rows[2:5].T.copy()
    labels = None
    label_file = label_path_for(path)
    if label_file is not None:
        try:
            labels = np.asarray(loadmat(label_file)["BPM0"], dtype=np.float64).reshape(-1)
        except (MatReadError, ValueError, OSError, KeyError) as e:
            raise RecordingError(f"{label_file}: cannot read reference heart rate 'BPM0' ({e})") from None
    t = uniform_times(ppg.shape[0], FS)
    return Recording(
        subject=path.stem, ppg=ppg, t_ppg=t, fs_ppg=FS, acc=acc, t_acc=t, fs_acc=FS, labels_bpm=labels, source=str(path)
    )

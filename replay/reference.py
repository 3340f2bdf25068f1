"""A reference heart rate per window kept beside CSV recordings: `reference_bpm.json`,
`{name: [bpm or null per window]}` (window k covers [2k, 2k+8) s), as Wrist PPG During Exercise ships it
(replay/wrist_exercise.py). The CSV reader attaches it to the recording it names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .recording import HOP_S, MAX_DURATION_S, RecordingError

REFERENCE_FILE = "reference_bpm.json"
MAX_REFERENCE_BYTES = 16 * 1024 * 1024  # 8 recordings' references are ~30 KB; anything near this is not one
MAX_WINDOWS = int(MAX_DURATION_S / HOP_S) + 1


def reference_for(csv_path: str | Path) -> np.ndarray | None:
    """The reference per window for `csv_path` from a `reference_bpm.json` beside it (NaN where it is null),
    or None where there is no such file or it does not name this recording."""
    path = Path(csv_path)
    ref_file = path.with_name(REFERENCE_FILE)
    if not ref_file.is_file():
        return None
    if ref_file.stat().st_size > MAX_REFERENCE_BYTES:
        raise RecordingError(f"{ref_file}: {ref_file.stat().st_size:,} bytes; a reference file is at most {MAX_REFERENCE_BYTES:,}")
    try:
        table = json.loads(ref_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordingError(f"{ref_file}: not a JSON reference file ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(table, dict):
        raise RecordingError(f"{ref_file}: expected an object {{name: [bpm or null per window]}}")
    values = table.get(path.stem)
    if values is None:
        return None
    if not isinstance(values, list) or len(values) > MAX_WINDOWS:
        raise RecordingError(f"{ref_file}: '{path.stem}' must be a list of at most {MAX_WINDOWS:,} numbers or nulls")
    out = np.full(len(values), np.nan)
    for k, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v < 400:
            raise RecordingError(f"{ref_file}: '{path.stem}' window {k}: {v!r:.40} is not a heart rate in bpm (or null)")
        out[k] = float(v)
    return out

"""`ppg-distill devices`: accuracy across data sets and activities, beside the beat and spectral baselines.

Issue 22: a model can be superb on the device it learned and confidently wrong on another. This harness
replays every labelled recording of each data set through the stream's own preprocessing (the windows
training uses), runs a model under the model contract, and publishes as the runtime does
(`stream/core/estimate.py`: cues, tracker, beat refinement, tempered confidence). Per data set and
activity (mean over recordings, as a user replaying each file would see it):

- **published**: what `ppg-stream --replay` publishes by default (cues, tracking, beat refinement);
- **window by window**: the same with `--no-tracking`;
- **before cues**: `--no-cues` (the runtime before issue 22: tracker and beat refinement only);
- **beat baseline**: a HeartPy-like time-domain beat detector on the same windows
  (`stream.core.beats.beat_rates`), the last rate carried over windows where it finds none;
- **spectral peak**: the PPG's plain power-spectrum peak in the window (no motion handling);
- **HeartPy** (where it imports: the `[bench]` extra): `heartpy.process` on the same 8 s windows at the
  recording's own rate after a 0.7-3.5 Hz band-pass, the last rate carried (`models/heartpy_baseline.py`);
- **confidence check**: of the windows published with confidence ≥ 0.9, the share within 10 bpm of the
  reference (goal ≥ 90 %), and how many windows that is; the longest stretch of stream time published
  confidently wrong (consecutive windows at confidence ≥ 0.9 and more than 10 bpm off: issue 22's "no
  minute-long lock at a wrong rate with confidence ≥ 0.9"); and the share of windows published as
  `reliable` (confidence ≥ the default `--min-confidence`) with their error.

Data sets (each skipped, with the reason, when absent): Wrist PPG During Exercise (another wrist device;
walking, running, two kinds of cycling), IEEE SPC 2015 (12 runners: the shipped student trained on all of
them, so its figures there are not held out; `ppg-distill accuracy` has the leave-one-subject-out ones),
each marked "(trained on)" where the model's metadata names it among its training data, and the
synthetic scenario sets of `models/scenarios.py` (held out from training by their seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .dataset import labelled_windows
from .features import bin_power
from .heartpy_baseline import heartpy_rates
from .targets import TRAINING_SPEC
from ..replay.load import load_recording
from ..replay.recording import HOP_S, WINDOW_S, Recording
from ..replay.wrist_exercise import activity_of, wrist_exercise_paths
from ..stream.core.beats import BeatGate, beat_rates
from ..stream.core.confidence_map import ConfidenceMap
from ..stream.core.cues import CueParams
from ..stream.core.estimate import DEFAULT_MIN_CONFIDENCE, estimate_windows
from ..stream.core.student_spec import BINS_BPM
from ..stream.core.tracker import Tracker, TrackerParams

CONFIDENT = 0.9
WITHIN_BPM = 10.0
COLUMNS = ("published", "window by window", "before cues", "beat baseline", "spectral peak")
LOCK_HEADER = "longest confidently wrong (s)"  # consecutive windows at confidence ≥ CONFIDENT, > WITHIN_BPM off
HEARTPY = "HeartPy"  # a column only where HeartPy was run (LabelledRecording.heartpy)


@dataclass(frozen=True)
class LabelledRecording:
    data_set: str
    name: str
    activity: str
    x: np.ndarray  # (N, C, T) the stream's preprocessed windows
    k: np.ndarray
    label: np.ndarray
    heartpy: np.ndarray | None = None  # HeartPy's rate per window (NaN where it found none), if it was run


@dataclass
class RecordingResult:
    data_set: str
    name: str
    activity: str
    windows: int
    mae: dict[str, float]  # per column
    confident: int  # windows published with confidence ≥ CONFIDENT
    confident_ok: int  # ...of them within WITHIN_BPM
    reliable: int  # windows with confidence ≥ DEFAULT_MIN_CONFIDENCE
    reliable_abs_error: float  # their summed absolute error
    confident_wrong_s: float  # longest stretch of consecutive windows at confidence ≥ CONFIDENT and > WITHIN_BPM off (s)
    published: np.ndarray = field(repr=False)
    confidence: np.ndarray = field(repr=False)


def windows_of(data_set: str, recording: Recording, activity: str, heartpy: bool = False) -> LabelledRecording:
    """The recording's labelled windows; `heartpy`: also HeartPy's rate on each (the `[bench]` extra)."""
    w = labelled_windows(recording, TRAINING_SPEC)
    return LabelledRecording(data_set, recording.subject, activity, w.x, w.k, w.hr_bpm.astype(np.float64),
                             heartpy_rates(recording, w.k) if heartpy else None)


def _named(name: str, trained_on: bool) -> str:
    return f"{name} (trained on)" if trained_on else name


def wrist_exercise_set(directory: str | Path | None = None, trained_on: bool = False, heartpy: bool = False) -> list[LabelledRecording]:
    name = _named("Wrist PPG During Exercise", trained_on)
    return [windows_of(name, load_recording(p), activity_of(p.stem), heartpy) for p in wrist_exercise_paths(directory)]


VARIANT_ACC_SCALE = (0.6, 1.5)  # device variants measured here keep the accelerometer in g, give or take a placement


def wrist_variant_set(copies: int, directory: str | Path | None = None, seed: int = 7, heartpy: bool = False) -> list[LabelledRecording]:
    """`copies` device variants of each Wrist PPG During Exercise recording (models/augment.py `device_variant`:
    another sampling rate and anti-alias filter, pulse shape and polarity, wander, noise, a turned accelerometer
    at 0.6-1.5 times its scale; no added grip or walking motion): the same activities as other sensors would
    record them, for the runtime's rules as much as the model."""
    from .augment import device_variant

    rng = np.random.default_rng(seed)
    out = []
    for path in wrist_exercise_paths(directory):
        rec = load_recording(path)
        for i in range(copies):
            variant = device_variant(rec, rng, grip_share=0.0, acc_scale=VARIANT_ACC_SCALE)
            variant = replace(variant, subject=f"{rec.subject} variant {i + 1} ({variant.fs_ppg:g} Hz)")
            out.append(windows_of("Wrist PPG During Exercise, device variants", variant, activity_of(path.stem), heartpy))
    return out


def ieee_set(directory: str | Path, trained_on: bool = True, heartpy: bool = False) -> list[LabelledRecording]:
    files = sorted(Path(directory).glob("DATA_*_TYPE*[0-9].mat"))
    if not files:
        raise FileNotFoundError(f"no IEEE SPC 2015 recordings (DATA_*_TYPE*.mat) in {directory}")
    return [windows_of(_named("IEEE SPC 2015", trained_on), load_recording(f), "run", heartpy) for f in files]


def scenario_set(recordings_per_set: int, seed: int = 1, heartpy: bool = False) -> list[LabelledRecording]:
    from .scenarios import SCENARIO_SETS

    out = []
    for name, make in SCENARIO_SETS.items():
        out += [windows_of("synthetic scenarios", rec, name, heartpy) for rec in make(recordings_per_set, seed)]
    return out


def carried(rate: np.ndarray, start: float = 80.0) -> np.ndarray:
    """Each NaN replaced by the last rate before it (`start` before the first)."""
    out = np.array(rate, dtype=np.float64)
    last = start
    for i, r in enumerate(out):
        if np.isfinite(r):
            last = r
        else:
            out[i] = last
    return out


def publish(rec: LabelledRecording, probs: np.ndarray, tracking: bool = True, cues: CueParams | None = CueParams(),
            confidence_map: ConfidenceMap | None = None, tracker_params: TrackerParams | None = None):
    """What the runtime publishes for one recording (its own tracker row, windows in order); `confidence_map`: the
    model's calibration of the confidence (`ModelSpec.confidence_map`), as the runtime applies it;
    `tracker_params`: the tracker's (None: the runtime's defaults)."""
    tracker = Tracker(BINS_BPM, tracker_params) if tracking else None
    rows = np.full(len(rec.k), tracker.row if tracker else 0)
    return estimate_windows(rec.x, probs, BINS_BPM, TRAINING_SPEC.fs, tracker.table if tracker else None, rows, rec.k, cues, BeatGate(),
                            confidence_map=confidence_map)


def evaluate(rec: LabelledRecording, predict: Callable[[np.ndarray], np.ndarray], confidence_map: ConfidenceMap | None = None) -> RecordingResult:
    probs = predict(rec.x)
    out = publish(rec, probs, confidence_map=confidence_map)
    label = rec.label
    estimates = {
        "published": out.bpm,
        "window by window": publish(rec, probs, tracking=False).bpm,
        "before cues": publish(rec, probs, cues=None).bpm,
        "beat baseline": carried(beat_rates(rec.x, TRAINING_SPEC.fs)[0]),
        "spectral peak": BINS_BPM[np.argmax(bin_power(np.asarray(rec.x[:, 0], dtype=np.float64)), axis=1)],
    }
    if rec.heartpy is not None:
        estimates[HEARTPY] = carried(rec.heartpy)
    error = np.abs(out.bpm - label)
    confident = out.confidence >= CONFIDENT
    reliable = out.confidence >= DEFAULT_MIN_CONFIDENCE
    return RecordingResult(
        rec.data_set, rec.name, rec.activity, len(label), {c: float(np.mean(np.abs(e - label))) for c, e in estimates.items()},
        int(confident.sum()), int((error[confident] <= WITHIN_BPM).sum()), int(reliable.sum()), float(error[reliable].sum()),
        longest_run_s(confident & (error > WITHIN_BPM), rec.k), out.bpm, out.confidence,
    )


def longest_run_s(mask: np.ndarray, k: np.ndarray) -> float:
    """The longest run of consecutive windows (k, k + 1, …) where `mask` holds, as stream time: its windows'
    hops, plus the one window's length the first of them spans (0 for no such window)."""
    best = run = 0
    for i in range(len(mask)):
        if not mask[i]:
            run = 0
        elif run and k[i] == k[i - 1] + 1:
            run += 1
        else:  # a first such window, or one after a gap in the stream
            run = 1
        best = max(best, run)
    return 0.0 if best == 0 else WINDOW_S + HOP_S * (best - 1)


def _columns(results: list[RecordingResult]) -> tuple[str, ...]:
    """The estimators every row has, plus HeartPy where any recording ran it (a dash where one did not)."""
    return COLUMNS + ((HEARTPY,) if any(HEARTPY in r.mae for r in results) else ())


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.2f}" if values else "—"


def _group_row(title: str, results: list[RecordingResult], columns: tuple[str, ...]) -> str:
    cells = [_cell([r.mae[c] for r in results if c in r.mae]) if c == HEARTPY else _cell([r.mae[c] for r in results]) for c in columns]
    confident = sum(r.confident for r in results)
    ok = sum(r.confident_ok for r in results)
    windows = sum(r.windows for r in results)
    reliable = sum(r.reliable for r in results)
    check = f"{100 * ok / confident:.0f} % of {confident}" if confident else "— (none)"
    rel = f"{100 * reliable / windows:.0f} %, {sum(r.reliable_abs_error for r in results) / reliable:.1f}" if reliable else "0 %, —"
    lock = max(r.confident_wrong_s for r in results)
    return f"| {title} | {len(results)} | {windows} | " + " | ".join(cells) + f" | {check} | {lock:.0f} | {rel} |"


def markdown(results: list[RecordingResult], per_recording: bool = True) -> str:
    """One table: per data set, per activity, then the data set as a whole; optionally every recording."""
    columns = _columns(results)
    head = ("| data set / activity | recordings | windows | " + " | ".join(columns)
            + f" | confidence ≥ {CONFIDENT:g}: within {WITHIN_BPM:g} bpm | {LOCK_HEADER} | reliable (≥ {DEFAULT_MIN_CONFIDENCE:g}): share, MAE |")
    lines = ["MAE in bpm against the reference, mean over recordings.", "", head, "|---|---:|---:|" + "---:|" * len(columns) + "---:|---:|---:|"]
    for data_set in dict.fromkeys(r.data_set for r in results):
        mine = [r for r in results if r.data_set == data_set]
        for activity in sorted(dict.fromkeys(r.activity for r in mine)):
            lines.append(_group_row(f"{data_set}: {activity}", [r for r in mine if r.activity == activity], columns))
        lines.append(_group_row(f"**{data_set}: all**", mine, columns))
    if per_recording:
        lines += ["", "| recording | activity | windows | " + " | ".join(columns) + f" | confidence ≥ {CONFIDENT:g}: within {WITHIN_BPM:g} bpm | {LOCK_HEADER} |",
                  "|---|---|---:|" + "---:|" * len(columns) + "---:|---:|"]
        for r in results:
            check = f"{r.confident_ok}/{r.confident}" if r.confident else "—"
            lines.append(f"| {r.name} | {r.activity} | {r.windows} | " + " | ".join(_cell([r.mae[c]] if c in r.mae else []) for c in columns)
                         + f" | {check} | {r.confident_wrong_s:.0f} |")
    return "\n".join(lines) + "\n"


# ---- training for devices (issue 22, item 1) ------------------------------------------------------------------
# The shipped student's recipe (resnet:16x2 from scratch on the fixed spectral front end, rect taper, 30 epochs,
# IEEE SPC 2015 + 20 synthetic + 12 activity recordings per scenario) plus `copies` device variants of every
# real training recording (models/augment.py: device_variant), windows cut by the stream's preprocessing.
# Leave-one-dataset-out: train on one data set, measure on the other with `ppg-distill devices --model`.

TRAIN_SETS = ("ieee", "wrist", "both")


def real_recordings(which: str, ieee_dir: str | Path, wrist_dir: str | Path | None = None) -> list[Recording]:
    out: list[Recording] = []
    if which in ("ieee", "both"):
        files = sorted(Path(ieee_dir).glob("DATA_*_TYPE*[0-9].mat"))
        if not files:
            raise FileNotFoundError(f"no IEEE SPC 2015 recordings (DATA_*_TYPE*.mat) in {ieee_dir}")
        out += [load_recording(f) for f in files]
    if which in ("wrist", "both"):
        out += [load_recording(p) for p in wrist_exercise_paths(wrist_dir)]
    return out


def device_training_windows(recordings: list[Recording], copies: int, seed: int, share: float = 1.0, grip_share: float | None = None,
                            walk_share: float = 0.0, walk_slow: bool = False):
    """Every recording's own windows plus `copies` device variants of it (subject ids kept per recording).
    `share` < 1 keeps a random share of each variant's windows: as many kinds of device, less weight against
    the original recordings (does the device share cost the original data set through its weight?).
    `grip_share`: the share of variants with grip-type motion (None: models/augment.py's GRIP_SHARE);
    `walk_share`: the share with a walking arm swing instead (models/augment.py `walk_swing`; 0: none), with
    `walk_slow` slowed first into a walker's heart rates."""
    from .augment import GRIP_SHARE, device_variant
    from .dataset import WindowSet

    rng = np.random.default_rng(seed)
    sets = []
    for rec in recordings:
        sets.append(labelled_windows(rec, TRAINING_SPEC))
        for _ in range(copies):
            variant = labelled_windows(device_variant(rec, rng, GRIP_SHARE if grip_share is None else grip_share, walk_share, walk_slow), TRAINING_SPEC, subject=rec.subject)
            sets.append(variant if share >= 1.0 else variant.select(rng.random(len(variant)) < share))
    return WindowSet.concat(sets)


def train_for_devices(recordings: list[Recording], copies: int, epochs: int = 30, seed: int = 0, threads: int = 1,
                      mix: int = 20, activities: int = 12, cache: Path = Path(".cache/ppg-distill"), progress: bool = False,
                      share: float = 1.0, grip_share: float | None = None, walk_share: float = 0.0, walk_slow: bool = False):
    """A student trained as the shipped one, with device variants of the real recordings in its training set."""
    from .architectures import build
    from .dataset import WindowSet
    from .losses import build_strategy
    from .study import training_extras
    from .targets import training_spec
    from .train import TrainConfig, train_model

    real = device_training_windows(recordings, copies, seed, share, grip_share, walk_share, walk_slow)
    train_set = WindowSet.concat([real, *training_extras(mix, activities, cache)])
    model = build("resnet", training_spec("rect"), 16, 2, seed=seed)
    train_model(model, train_set, TrainConfig(epochs=epochs, seed=seed, threads=threads), build_strategy("scratch"), None, progress=progress)
    return model, real


def cv_for_devices(groups: list[list[Recording]], also: list[Recording], copies: int, epochs: int = 30, seed: int = 0, threads: int = 1,
                   mix: int = 20, activities: int = 12, cache: Path = Path(".cache/ppg-distill"), progress: bool = False, scores=None,
                   share: float = 1.0, grip_share: float | None = None, walk_share: float = 0.0, walk_slow: bool = False):
    """Cross-validation by groups of recordings: fold i trains on every other group plus `also` (each with its
    device variants; seed + i) and returns, per held-out recording, its windows' softmax rows:
    {subject: probs}. With groups from one data set and `also` the other, the model card's subject-wise CV
    of a recipe that trains on both. `scores` (a `study.HeldOutScores`) also scores every fold as `run_cv` does
    (held-out synthetic recordings and scenarios, calibration), for the exported student's `cv`."""
    from .dataset import WindowSet
    from .train import predict_probabilities

    held_probs: dict[str, np.ndarray] = {}
    for fold, held in enumerate(groups):
        train = [r for g in groups if g is not held for r in g] + list(also)
        model, _ = train_for_devices(train, copies, epochs, seed + fold, threads, mix, activities, cache, progress, share, grip_share, walk_share, walk_slow)
        windows = [labelled_windows(rec, TRAINING_SPEC) for rec in held]
        test = WindowSet.concat(windows)
        probs = scores.add(model, test) if scores is not None else predict_probabilities(model, test.x)
        for rec, start, w in zip(held, np.cumsum([0] + [len(w) for w in windows]), windows):
            held_probs[rec.subject] = probs[start : start + len(w)]
    return held_probs


def ieee_groups(recordings: list[Recording], folds: int) -> list[list[Recording]]:
    """The model card's IEEE folds: recordings in name order, fold i every `folds`-th from i (models/study.py)."""
    ordered = sorted(recordings, key=lambda r: r.subject)
    return [ordered[i::folds] for i in range(folds)]


def subject_groups(recordings: list[Recording]) -> list[list[Recording]]:
    """Wrist PPG During Exercise by subject (`s2_walk` → s2): leave one subject out."""
    by: dict[str, list[Recording]] = {}
    for r in recordings:
        by.setdefault(r.subject.split("_")[0], []).append(r)
    return list(by.values())

"""Labelled windows for training, produced by the very preprocessing the stream runs (train/serve parity).

A recording is cut into chunks exactly as the replay source cuts it and pushed through
`StreamPreprocessor`; window k's label is the recording's label k (the window protocol).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..replay.load import load_recording
from ..replay.recording import Recording, uniform_times
from ..stream.sources.replay import ReplaySource
from ..replay.activity import ACTIVITIES, synthesize_activity
from ..replay.synthetic import Synthetic, synthesize
from ..stream.core.model_spec import ModelSpec
from ..stream.core.preprocess import StreamPreprocessor


@dataclass(frozen=True)
class WindowSet:
    x: np.ndarray  # (N, C, T) float32 model inputs
    hr_bpm: np.ndarray  # (N,) reference heart rate
    subject: np.ndarray  # (N,) subject id per window (for subject-wise splits)
    k: np.ndarray  # (N,) window index inside its recording (tracking needs the order)

    def __len__(self) -> int:
        return len(self.hr_bpm)

    def select(self, mask: np.ndarray) -> "WindowSet":
        return WindowSet(self.x[mask], self.hr_bpm[mask], self.subject[mask], self.k[mask])

    @staticmethod
    def concat(sets: list["WindowSet"]) -> "WindowSet":
        return WindowSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in ("x", "hr_bpm", "subject", "k")))

    def save(self, path: Path) -> None:
        np.savez_compressed(path, x=self.x, hr_bpm=self.hr_bpm, subject=self.subject, k=self.k)

    @staticmethod
    def load(path: Path) -> "WindowSet":
        with np.load(path, allow_pickle=False) as f:
            return WindowSet(f["x"], f["hr_bpm"], f["subject"], f["k"])


def recording_windows(recording: Recording, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(k, x) for every window of a recording, chunked as a replay at --speed max chunks it."""
    source = ReplaySource(recording, speed=None)
    pre = StreamPreprocessor(spec, source.rates)
    ks, xs = [], []
    for _, chunks in source.blocks():
        for chunk in chunks:
            batch = pre.feed(chunk)
            ks.append(batch.k)
            xs.append(batch.x)
    return np.concatenate(ks), np.concatenate(xs)


def labelled_windows(recording: Recording, spec: ModelSpec, subject: str | None = None) -> WindowSet:
    if recording.labels_bpm is None:
        raise ValueError(f"{recording.source or recording.subject}: no reference heart rate to train on")
    k, x = recording_windows(recording, spec)
    labels = recording.labels_bpm
    ok = (k < len(labels)) & np.isfinite(labels[np.minimum(k, len(labels) - 1)])
    k, x = k[ok], x[ok]
    return WindowSet(x, labels[k].astype(np.float32), np.full(len(k), subject or recording.subject), k)


def ieee_windows(directory: Path, spec: ModelSpec) -> WindowSet:
    """The 12 IEEE SPC 2015 training recordings, one subject each."""
    files = sorted(Path(directory).glob("DATA_*_TYPE*[0-9].mat"))
    if not files:
        raise FileNotFoundError(f"no IEEE SPC 2015 recordings (DATA_*_TYPE*.mat) in {directory}")
    return WindowSet.concat([labelled_windows(load_recording(f), spec, subject=f.stem[:7]) for f in files])


def dalia_windows(directory: Path, spec: ModelSpec) -> WindowSet:
    """PPG-DaLiA subjects (`S*.pkl` in `directory` or its subfolders), one subject per file, prefixed `DaLiA-`."""
    files = sorted(Path(directory).rglob("S*.pkl"), key=lambda f: f.name)
    if not files:
        raise FileNotFoundError(f"no PPG-DaLiA subjects (S*.pkl) in {directory}")
    sets = []
    for f in files:
        rec = load_recording(f)
        sets.append(labelled_windows(rec, spec, subject=f"DaLiA-{rec.subject}"))
    return WindowSet.concat(sets)


def synthetic_windows(spec: ModelSpec, n_recordings: int, duration_s: float, seed: int) -> WindowSet:
    """A pre-training corpus from the generator: varied HR, motion share and artefact strength."""
    rng = np.random.default_rng(seed)
    sets = []
    for i in range(n_recordings):
        syn = synthesize(duration_s, seed=int(rng.integers(1 << 31)), motion_share=float(rng.uniform(0.2, 0.9)),
                         artefact_gain=float(rng.uniform(0.5, 4.0)), noise=float(rng.uniform(0.02, 0.3)))
        sets.append(labelled_windows(_recording(syn, f"syn{i}"), spec))
    return WindowSet.concat(sets)


def activity_windows(spec: ModelSpec, per_kind: int, duration_s: float, seed: int, kinds: tuple[str, ...] = ACTIVITIES) -> WindowSet:
    """Windows of the activity scenarios (motion at and around the HR, irregular beats), `per_kind`
    recordings of each kind; each window's subject names its kind and recording (`act-boxing-2`)."""
    rng = np.random.default_rng(seed)
    sets = []
    for kind in kinds:
        for i in range(per_kind):
            act = synthesize_activity(kind, duration_s, seed=int(rng.integers(1 << 31)))
            sets.append(labelled_windows(_recording(act.syn, f"act-{kind}-{i}"), spec))
    return WindowSet.concat(sets)


def _recording(syn: Synthetic, subject: str) -> Recording:
    return Recording(subject, syn.ppg[:, None], uniform_times(len(syn.ppg), syn.fs_ppg), syn.fs_ppg,
                     syn.acc_g, uniform_times(len(syn.acc_g), syn.fs_acc), syn.fs_acc, syn.labels_bpm)


def subject_folds(subjects: np.ndarray, n_folds: int) -> list[np.ndarray]:
    """Subject-wise folds (no subject in two folds): a list of held-out subject arrays, deterministic."""
    unique = np.unique(subjects)
    if n_folds > len(unique):
        raise ValueError(f"{n_folds} folds need at least as many subjects, have {len(unique)}")
    return [unique[i::n_folds] for i in range(n_folds)]

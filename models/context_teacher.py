"""A teacher with privileged context: the spectra of the windows around the one it labels.

The student sees one causal 8 s window. This teacher sees that window's spectral features together
with those of the `radius` windows before and after it in the same recording (2 s hop: radius 8 is
±16 s, a 40 s non-causal span), stacked as channels of a 1D-ResNet over the bin axis. A heart rate
that the window alone leaves ambiguous (a cadence peak beside the pulse, a motion burst) is usually
plain a few windows away, so the teacher's per-window output is much better than any 8 s model's,
and the student learns from those outputs window by window (offline distillation: the teacher's
logits on the training windows are computed once, as for the spectral teachers).

The spectral front end is fixed (no learned parameters), so each window's features are computed
once and training works on the stacked features directly; augmentation there is a label-consistent
frequency stretch (every neighbour and the label scaled by one factor) and feature noise. A teacher
named `C64x3` is an ensemble: the mean of the log-probabilities of three seeds of `C64`.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .dataset import WindowSet
from .losses import StrategyInputs, build_strategy
from .resnet1d import _Block
from .spectral_front import N_FEATURES, SpectralFront
from .targets import TRAINING_SPEC, gaussian_targets, nearest_bin
from ..stream.core.model_spec import ModelSpec
from ..stream.core.student_spec import BINS_BPM

# name → (width, depth, radius in windows): early fusion of the neighbours' spectra
CONTEXT_TEACHERS = {"C32": (32, 4, 8), "C64": (64, 4, 8), "C64r5": (64, 4, 5), "C64r12": (64, 4, 12), "C128": (128, 6, 8)}
# name → (width, depth): a per-window spectral ResNet (the students' family), its context only from `+fb`
WINDOW_TEACHERS = {"R16x2": (16, 2), "R32x3": (32, 3), "R64x4": (64, 4)}
# `<base>[e<M>][+fb]`: e<M> an ensemble of M seeds (mean log-probability); +fb the non-causal forward-backward
# smoother over the whole recording (the causal tracker's transition prior, run both ways)
_NAME = re.compile(r"^(?P<base>[CR][0-9a-z]+?)(?:e(?P<members>[2-9]))?(?P<fb>\+fb)?$")


@dataclass(frozen=True)
class TeacherKind:
    base: str
    members: int
    smooth: bool

    @property
    def radius(self) -> int:
        return CONTEXT_TEACHERS[self.base][2] if self.base in CONTEXT_TEACHERS else 0


def parse_context_teacher(name: str) -> TeacherKind | None:
    """`C64` → (C64, 1, no smoothing); `R32x3e3+fb` → (R32x3, 3 members, smoothed); None when `name` is
    not a privileged-context teacher."""
    m = _NAME.match(name or "")
    if not m or (m["base"] not in CONTEXT_TEACHERS and m["base"] not in WINDOW_TEACHERS):
        return None
    kind = TeacherKind(m["base"], int(m["members"] or 1), bool(m["fb"]))
    return kind if kind.radius or kind.smooth else None  # a plain per-window ResNet has no privileged context


def is_context_teacher(name: str | None) -> bool:
    return parse_context_teacher(name or "") is not None


def span_s(name: str, hop_s: float = 2.0, window_s: float = 8.0) -> float | None:
    """Seconds of signal one output sees (the labelled window and its neighbours); None: the whole
    recording (forward-backward smoothing)."""
    kind = parse_context_teacher(name)
    return None if kind.smooth else window_s + 2 * kind.radius * hop_s


def forward_backward(probs: np.ndarray, subject: np.ndarray, k: np.ndarray, step_bpm: float = 3.0, floor: float = 1e-3,
                     power: float = 0.7, outlier: float = 0.1) -> np.ndarray:
    """Per-window posteriors over the bins given every window of the recording, past and future: the
    causal tracker's model (Laplace steps of `step_bpm` per 2 s hop, widened over skipped windows, a
    floor for the way back, bounded and tempered evidence) smoothed both ways. (N, K) rows sum to 1."""
    bins = np.asarray(BINS_BPM, dtype=np.float64)
    n_bins = len(bins)
    distance = np.abs(bins[:, None] - bins[None, :])
    out = np.empty_like(probs, dtype=np.float64)
    cache: dict[int, np.ndarray] = {}

    def transition(gap: int) -> np.ndarray:
        if gap not in cache:
            a = np.exp(-distance / (step_bpm * max(gap, 1)))
            a /= a.sum(axis=1, keepdims=True)
            cache[gap] = (1 - floor) * a + floor / n_bins
        return cache[gap]

    for s in np.unique(subject):
        rows = np.flatnonzero(subject == s)
        rows = rows[np.argsort(k[rows], kind="stable")]
        evidence = ((1 - outlier) * probs[rows] + outlier / n_bins) ** power
        gaps = np.diff(k[rows]).astype(int)
        alpha = np.empty((len(rows), n_bins))
        a = evidence[0] / evidence[0].sum()
        alpha[0] = a
        for t in range(1, len(rows)):
            a = (alpha[t - 1] @ transition(gaps[t - 1])) * evidence[t]
            alpha[t] = a / a.sum()
        beta = np.ones(n_bins)
        post = np.empty_like(alpha)
        post[-1] = alpha[-1]
        for t in range(len(rows) - 2, -1, -1):
            beta = transition(gaps[t]) @ (evidence[t + 1] * beta)
            beta /= beta.sum()
            p = alpha[t] * beta
            post[t] = p / p.sum()
        out[rows] = post
    return out


class ContextNet(nn.Module):
    """(N, 2R+1, 3, K) stacked spectral features of a window and its neighbours → (N, K) logits."""

    def __init__(self, width: int, depth: int, radius: int) -> None:
        super().__init__()
        self.radius = radius
        channels = N_FEATURES * (2 * radius + 1)
        self.stem = nn.Sequential(nn.Conv1d(channels, width, 5, padding=2, bias=False), nn.BatchNorm1d(width), nn.ReLU())
        self.blocks = nn.Sequential(*[_Block(width, 2 ** (i % 4)) for i in range(depth)])
        self.head = nn.Conv1d(width, 1, 1)

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(stacked.flatten(1, 2)))).squeeze(1)


@torch.no_grad()
def front_features(spec: ModelSpec, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    """The fixed front end's (N, 3, K) features of every window."""
    front = SpectralFront(spec)
    return np.concatenate([front(torch.from_numpy(x[i : i + batch])).numpy() for i in range(0, len(x), batch)]).astype(np.float32)


def neighbour_index(subject: np.ndarray, k: np.ndarray, radius: int) -> np.ndarray:
    """(N, 2R+1) row of the window k+j (j = −R…R) of the same recording; where that window does not
    exist (recording edges, dropped labels) the nearest existing window of the recording stands in."""
    out = np.empty((len(k), 2 * radius + 1), dtype=np.int64)
    offsets = np.arange(-radius, radius + 1)
    for s in np.unique(subject):
        rows = np.flatnonzero(subject == s)
        rows = rows[np.argsort(k[rows], kind="stable")]
        ks = k[rows]
        want = ks[:, None] + offsets[None, :]
        pos = np.clip(np.searchsorted(ks, want), 0, len(ks) - 1)
        left = np.clip(pos - 1, 0, len(ks) - 1)
        nearer_left = np.abs(ks[left] - want) < np.abs(ks[pos] - want)
        out[rows] = rows[np.where(nearer_left, left, pos)]
    return out


def stretch_features(feats: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Resample (B, ..., K) features on the bpm axis as if every frequency were multiplied by `factor`
    (B,): the spectrum of a time-stretched signal, so the label moves by the same factor."""
    bins = np.asarray(BINS_BPM, dtype=np.float64)
    src = (bins[None, :] / factor[:, None] - bins[0]) / (bins[1] - bins[0])  # fractional source bin, (B, K)
    lo = np.clip(np.floor(src).astype(np.int64), 0, len(bins) - 1)
    hi = np.clip(lo + 1, 0, len(bins) - 1)
    w = np.clip(src - lo, 0.0, 1.0).astype(np.float32)
    shape = (feats.shape[0],) + (1,) * (feats.ndim - 2) + (len(bins),)
    lo, hi, w = lo.reshape(shape), hi.reshape(shape), w.reshape(shape)
    a = np.take_along_axis(feats, np.broadcast_to(lo, feats.shape), axis=-1)
    b = np.take_along_axis(feats, np.broadcast_to(hi, feats.shape), axis=-1)
    return (a * (1 - w) + b * w).astype(np.float32)


@dataclass(frozen=True)
class ContextConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    stretch: float = 0.12  # ± frequency stretch
    noise: float = 0.1  # feature noise (the features are log-powers)
    seed: int = 0
    threads: int = 1


class ContextTeacher(nn.Module):
    """One or several members (context nets over stacked neighbours, or per-window ResNets), their mean
    log-probability, and with `+fb` the forward-backward smoother over each whole recording."""

    def __init__(self, spec: ModelSpec, name: str, seed: int = 0) -> None:
        super().__init__()
        from .architectures import build

        kind = parse_context_teacher(name)
        self.name, self.spec, self.kind, self.radius = name, spec, kind, kind.radius
        nets = []
        for m in range(kind.members):
            if kind.base in CONTEXT_TEACHERS:
                width, depth, radius = CONTEXT_TEACHERS[kind.base]
                torch.manual_seed(seed + 1000 * m)
                nets.append(ContextNet(width, depth, radius))
            else:
                width, depth = WINDOW_TEACHERS[kind.base]
                nets.append(build("resnet", spec, width, depth, seed=seed + 1000 * m))
        self.nets = nn.ModuleList(nets)

    @torch.no_grad()
    def logits(self, data: WindowSet, batch: int = 512, smooth: bool | None = None) -> np.ndarray:
        """(N, K) per-window logits: the members' mean log-probability, smoothed over the recording
        with `+fb` (`smooth` overrides the name, so one trained teacher is scored both ways)."""
        smooth = self.kind.smooth if smooth is None else smooth
        out = np.zeros((len(data), len(BINS_BPM)))
        if self.kind.base in CONTEXT_TEACHERS:
            feats = front_features(self.spec, data.x)
            idx = neighbour_index(data.subject, data.k, self.radius)
            inputs = lambda i: torch.from_numpy(feats[idx[i : i + batch]])  # noqa: E731
        else:
            inputs = lambda i: torch.from_numpy(data.x[i : i + batch])  # noqa: E731
        for net in self.nets:
            net.eval()
            for i in range(0, len(data), batch):
                out[i : i + batch] += torch.log_softmax(net(inputs(i)), dim=1).double().numpy() / len(self.nets)
        if smooth:
            probs = np.exp(out - out.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            out = np.log(forward_backward(probs, data.subject, data.k) + 1e-12)
        return out


def train_context_teacher(teacher: ContextTeacher, data: WindowSet, config: ContextConfig = ContextConfig(), log=None) -> dict:
    """Train every member on `data` (whole recordings: the context comes from the same set); returns
    the training cost (seconds, per-epoch losses of the first member)."""
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    if teacher.kind.base in WINDOW_TEACHERS:  # per-window ResNets: the study's own training loop and augmentation
        from .train import TrainConfig, train_model

        history = []
        for m, net in enumerate(teacher.nets):
            h = train_model(net, data, TrainConfig(epochs=config.epochs, seed=config.seed + 1000 * m, threads=config.threads))
            history = history or [e["loss"] for e in h]
        teacher.eval()
        return {"train_s": round(time.perf_counter() - started, 1), "history": history}
    feats = front_features(teacher.spec, data.x)
    idx = neighbour_index(data.subject, data.k, teacher.radius)
    loss_fn = build_strategy("scratch")
    history = []
    for m, net in enumerate(teacher.nets):
        rng = np.random.default_rng(config.seed + 1000 * m)
        torch.manual_seed(config.seed + 1000 * m)
        optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        steps = config.epochs * math.ceil(len(data) / config.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=max(steps, 1), pct_start=0.15)
        for epoch in range(config.epochs):
            net.train()
            total, count = 0.0, 0
            order = rng.permutation(len(data))
            for i in range(0, len(data), config.batch_size):
                rows = order[i : i + config.batch_size]
                x = feats[idx[rows]]  # (B, 2R+1, 3, K)
                hr = data.hr_bpm[rows].astype(np.float64)
                if config.stretch:
                    factor = rng.uniform(1 - config.stretch, 1 + config.stretch, len(rows))
                    factor = np.clip(factor, BINS_BPM[0] / np.maximum(hr, 1e-3) * 1.02, BINS_BPM[-1] / np.maximum(hr, 1e-3) * 0.98)
                    x, hr = stretch_features(x, factor), hr * factor
                if config.noise:
                    x = x + rng.normal(0.0, config.noise, x.shape).astype(np.float32)
                inputs = StrategyInputs(student_logits=net(torch.from_numpy(x)), targets=torch.from_numpy(gaussian_targets(hr)),
                                        target_bin=torch.from_numpy(nearest_bin(hr)), epoch=epoch)
                loss = loss_fn(inputs)["loss"]
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach()) * len(rows)
                count += len(rows)
            if m == 0:
                history.append(total / count)
            if log:
                log(f"  member {m} epoch {epoch + 1}/{config.epochs}: loss {total / count:.3f}")
    teacher.eval()
    return {"train_s": round(time.perf_counter() - started, 1), "history": history}


def save_context_teacher(path, teacher: ContextTeacher, info: dict) -> None:
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"context_teacher": teacher.name, "state_dict": teacher.state_dict(), "info": info}, path)


def load_context_teacher(path) -> tuple[ContextTeacher, dict]:
    """A trained context teacher (tensors, strings and numbers only: `torch.load(weights_only=True)`)."""
    from pathlib import Path

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such context teacher (train it first: ppg-distill teacher-screen --candidates NAME --only FOLDS)")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    teacher = ContextTeacher(TRAINING_SPEC, str(blob["context_teacher"]))
    teacher.load_state_dict(blob["state_dict"])
    teacher.eval()
    return teacher, blob.get("info", {})


def n_parameters(teacher: ContextTeacher) -> int:
    return sum(p.numel() for p in teacher.parameters() if p.requires_grad)


def screen(names: list[str], data, folds: list[int], extra: WindowSet | None = None, config: ContextConfig = ContextConfig(),
           log=print, path_of=None, on_row=None) -> list[dict]:
    """Train each candidate on every listed fold's training subjects (plus `extra`, e.g. synthetic
    recordings) and score it on the fold's held-out subjects; one row per candidate and fold (handed to
    `on_row` as soon as it is measured). With `path_of(name, fold)` (where a sweep finds a fold's
    teacher: `ppg_stream.models.study.teacher_path`), each fold's teacher is kept there, and one already
    there is scored, not retrained."""
    from ..stream.core.decode import softmax
    from .held_out import per_subject_errors, subject_units
    from .train import evaluate_probabilities

    rows = []
    for name in names:
        for fold in folds:
            train_set, test_set = data.split(fold)
            if extra is not None:
                train_set = WindowSet.concat([train_set, extra])
            path = path_of(name, fold) if path_of is not None else None
            if path is not None and path.exists():
                teacher, cost = load_context_teacher(path)
            else:
                teacher = ContextTeacher(TRAINING_SPEC, name, seed=config.seed)
                cost = train_context_teacher(teacher, train_set, config)
                if path is not None:
                    save_context_teacher(path, teacher, {"fold": fold, "train_s": cost["train_s"], "epochs": config.epochs,
                                                         "train_windows": len(train_set)})
            probs = softmax(teacher.logits(test_set))
            metrics = evaluate_probabilities(probs, test_set)
            other = evaluate_probabilities(softmax(teacher.logits(test_set, smooth=not teacher.kind.smooth)), test_set)
            row = {"teacher": name, "fold": fold, "held_out": [str(s) for s in data.folds[fold]], "windows": len(test_set),
                   "params": n_parameters(teacher), "span_s": span_s(name), "epochs": config.epochs,
                   "extra_windows": 0 if extra is None else len(extra), "train_windows": len(train_set),
                   "mae": metrics["mae"], "mae_untracked": metrics["mae_untracked"], "train_s": cost.get("train_s"),
                   # the same trained members scored the other way (with / without the smoother)
                   ("mae_untracked_raw" if teacher.kind.smooth else "mae_untracked_fb"): other["mae_untracked"],
                   **subject_units(per_subject_errors(probs, test_set), data.name)}  # each held-out subject (and recording)
            log(f"{name} fold {fold} ({', '.join(row['held_out'])}): {row['mae_untracked']:.2f} window by window "
                f"({'raw' if teacher.kind.smooth else 'with +fb'} {other['mae_untracked']:.2f}), {row['mae']:.2f} tracked, {row['train_s']:.0f} s")
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


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

# name → (width, depth, radius in windows); `<name>x<M>` is an ensemble of M seeds of <name>
CONTEXT_TEACHERS = {"C32": (32, 4, 8), "C64": (64, 4, 8), "C64r5": (64, 4, 5), "C64r12": (64, 4, 12), "C128": (128, 6, 8)}
_NAME = re.compile(r"^(?P<base>C\w+?)(?:x(?P<members>[2-9]))?$")


def parse_context_teacher(name: str) -> tuple[str, int] | None:
    """`C64` → ("C64", 1); `C64x3` → ("C64", 3); None when `name` is not a context teacher."""
    m = _NAME.match(name or "")
    if not m or m["base"] not in CONTEXT_TEACHERS:
        return None
    return m["base"], int(m["members"] or 1)


def is_context_teacher(name: str | None) -> bool:
    return parse_context_teacher(name or "") is not None


def span_s(name: str, hop_s: float = 2.0, window_s: float = 8.0) -> float:
    """Seconds of signal one output sees (the labelled window and its neighbours)."""
    base, _ = parse_context_teacher(name)
    return window_s + 2 * CONTEXT_TEACHERS[base][2] * hop_s


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
    """One or several `ContextNet`s and the spectral front end, applied to whole recordings."""

    def __init__(self, spec: ModelSpec, name: str, seed: int = 0) -> None:
        super().__init__()
        base, members = parse_context_teacher(name)
        width, depth, radius = CONTEXT_TEACHERS[base]
        self.name, self.spec, self.radius = name, spec, radius
        nets = []
        for m in range(members):
            torch.manual_seed(seed + 1000 * m)
            nets.append(ContextNet(width, depth, radius))
        self.nets = nn.ModuleList(nets)

    @torch.no_grad()
    def logits(self, data: WindowSet, batch: int = 512) -> np.ndarray:
        """(N, K) per-window logits (an ensemble: mean of its members' log-probabilities)."""
        feats = front_features(self.spec, data.x)
        idx = neighbour_index(data.subject, data.k, self.radius)
        out = np.zeros((len(data), feats.shape[-1]))
        for net in self.nets:
            net.eval()
            for i in range(0, len(data), batch):
                z = net(torch.from_numpy(feats[idx[i : i + batch]]))
                out[i : i + batch] += torch.log_softmax(z, dim=1).numpy() / len(self.nets)
        return out


def train_context_teacher(teacher: ContextTeacher, data: WindowSet, config: ContextConfig = ContextConfig(), log=None) -> dict:
    """Train every member on `data` (whole recordings: the context comes from the same set); returns
    the training cost (seconds, per-epoch losses of the first member)."""
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
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


def n_parameters(teacher: ContextTeacher) -> int:
    return sum(p.numel() for p in teacher.parameters() if p.requires_grad)


def screen(names: list[str], data, folds: list[int], extra: WindowSet | None = None, config: ContextConfig = ContextConfig(),
           log=print) -> list[dict]:
    """Train each candidate on every listed fold's training subjects (plus `extra`, e.g. synthetic
    recordings) and score it on the fold's held-out subjects; one row per candidate and fold."""
    from ..stream.core.decode import softmax
    from .train import evaluate_probabilities

    rows = []
    for name in names:
        for fold in folds:
            train_set, test_set = data.split(fold)
            if extra is not None:
                train_set = WindowSet.concat([train_set, extra])
            teacher = ContextTeacher(TRAINING_SPEC, name, seed=config.seed)
            cost = train_context_teacher(teacher, train_set, config)
            metrics = evaluate_probabilities(softmax(teacher.logits(test_set)), test_set)
            row = {"teacher": name, "fold": fold, "held_out": [str(s) for s in data.folds[fold]], "windows": len(test_set),
                   "params": n_parameters(teacher), "span_s": span_s(name), "epochs": config.epochs,
                   "extra_windows": 0 if extra is None else len(extra), "train_windows": len(train_set),
                   "mae": metrics["mae"], "mae_untracked": metrics["mae_untracked"], "train_s": cost["train_s"]}
            log(f"{name} fold {fold} ({', '.join(row['held_out'])}): {row['mae_untracked']:.2f} window by window, "
                f"{row['mae']:.2f} tracked, {row['train_s']:.0f} s")
            rows.append(row)
    return rows


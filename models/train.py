"""Training and evaluation: one loop for teachers, scratch students and every distillation strategy.

The teacher (when there is one) is frozen in eval mode; the strategy returns its loss terms by name
and their per-epoch means are kept in the history. Seeds are fixed, so runs are reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .augment import augment
from .dataset import WindowSet
from .losses import Strategy, StrategyInputs, build_strategy
from .targets import gaussian_targets, nearest_bin
from ..stream.core.student_spec import BINS_BPM
from ..stream.core.decode import decode_probabilities, softmax
from ..stream.core.tracker import Tracker


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    augment: bool = True
    threads: int = 2

    def as_dict(self) -> dict:
        return asdict(self)


def set_seed(seed: int, threads: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def _batches(n: int, size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, size):
        yield order[i : i + size]


@dataclass(frozen=True)
class TeacherOutputs:
    """A frozen teacher's outputs on a training set, computed once (offline distillation).

    A large teacher's forward pass costs more than a small student's whole step on a CPU; caching it
    makes a strategy sweep affordable. The student still sees augmented windows, minus the
    time-stretch (it would move the label away from what the teacher saw).
    """

    logits: torch.Tensor
    features: torch.Tensor | None = None

    @staticmethod
    @torch.no_grad()
    def compute(teacher: nn.Module, x: np.ndarray, with_features: bool, batch: int = 256) -> "TeacherOutputs":
        teacher.eval()
        logits, feats = [], []
        for i in range(0, len(x), batch):
            xt = torch.from_numpy(x[i : i + batch])
            if with_features:
                h = teacher.features(xt)
                feats.append(h)
                logits.append(teacher.logits_from_features(h))
            else:
                logits.append(teacher(xt))
        return TeacherOutputs(torch.cat(logits), torch.cat(feats) if with_features else None)


def train_model(
    model: nn.Module,
    data: WindowSet,
    config: TrainConfig,
    strategy: Strategy | None = None,
    teacher: nn.Module | TeacherOutputs | None = None,
    progress: bool = False,
) -> list[dict[str, float]]:
    """Train in place; returns per-epoch mean loss terms. `teacher` is a frozen module (online) or
    its precomputed outputs on `data` (offline)."""
    set_seed(config.seed, config.threads)
    strategy = strategy or build_strategy("scratch")
    if strategy.needs_teacher and teacher is None:
        raise ValueError(f"strategy {strategy.name!r} needs a teacher")
    cached = isinstance(teacher, TeacherOutputs)
    if isinstance(teacher, nn.Module):
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    rng = np.random.default_rng(config.seed)
    if strategy.needs_features:  # the hint projection's shape follows from one forward pass
        with torch.no_grad():
            probe = torch.from_numpy(data.x[:2])
            teacher_probe = teacher.features[:2] if cached else teacher.features(probe)
            strategy.build_projection(model.features(probe), teacher_probe)
    params = list(model.parameters()) + list(strategy.parameters())
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(data) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=max(steps, 1), pct_start=0.15)
    history = []
    epochs = range(config.epochs)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc=f"{strategy.name} {type(model).__name__}", leave=False)
    for epoch in epochs:
        model.train()
        sums: dict[str, float] = {}
        count = 0
        for idx in _batches(len(data), config.batch_size, rng):
            x, hr = data.x[idx], data.hr_bpm[idx]
            if config.augment:
                x, hr = augment(x, hr, rng, stretch=not cached)
            xt = torch.from_numpy(x)
            inputs = StrategyInputs(
                student_logits=None,
                targets=torch.from_numpy(gaussian_targets(hr)),
                target_bin=torch.from_numpy(nearest_bin(hr)),
                epoch=epoch,
            )
            if strategy.needs_features:
                inputs.student_features = model.features(xt)
                inputs.student_logits = model.logits_from_features(inputs.student_features)
            else:
                inputs.student_logits = model(xt)
            if cached and strategy.needs_teacher:
                inputs.teacher_logits = teacher.logits[idx]
                if strategy.needs_features:
                    inputs.teacher_features = teacher.features[idx]
            elif teacher is not None and strategy.needs_teacher:
                with torch.no_grad():
                    if strategy.needs_features:
                        inputs.teacher_features = teacher.features(xt)
                        inputs.teacher_logits = teacher.logits_from_features(inputs.teacher_features)
                    else:
                        inputs.teacher_logits = teacher(xt)
            terms = strategy(inputs)
            optimiser.zero_grad()
            terms["loss"].backward()
            optimiser.step()
            schedule.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) * len(idx)
            count += len(idx)
        history.append({name: total / count for name, total in sums.items()})
    model.eval()
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    model.eval()
    return np.concatenate([model(torch.from_numpy(x[i : i + batch])).numpy() for i in range(0, len(x), batch)]).astype(np.float64)


def predict_probabilities(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    return softmax(predict_logits(model, x, batch))


def evaluate(model: nn.Module, data: WindowSet) -> dict[str, float]:
    """MAE/RMSE/within-5-bpm of the window-by-window estimate and of the tracked one (per subject, in order)."""
    return evaluate_probabilities(predict_probabilities(model, data.x), data)


def evaluate_probabilities(probs: np.ndarray, data: WindowSet) -> dict[str, float]:
    """`evaluate` for given softmax rows (e.g. after a temperature), one row per window of `data`."""
    raw, _ = decode_probabilities(probs, BINS_BPM)
    tracked = np.empty_like(raw)
    for subject in np.unique(data.subject):
        rows = np.flatnonzero(data.subject == subject)
        rows = rows[np.argsort(data.k[rows])]
        tracked[rows], _ = Tracker(BINS_BPM).update(data.k[rows], probs[rows])
    return {**error_metrics(tracked, data.hr_bpm), **{f"{k}_untracked": v for k, v in error_metrics(raw, data.hr_bpm).items()}}


def error_metrics(estimate: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    err = np.abs(estimate - reference)
    return {"mae": float(err.mean()), "rmse": float(np.sqrt((err**2).mean())), "within5": float((err <= 5).mean())}


def pool_folds(estimates: list[tuple[dict, int]]) -> tuple[int, dict[str, float]]:
    """Per-fold metrics → (windows, metrics over all held-out windows), each fold weighted by its windows."""
    total = sum(n for _, n in estimates)
    return total, {k: sum(m[k] * n for m, n in estimates) / total for k in estimates[0][0]}
